// The part of ONNX Runtime's C API that deploylab_ort.cc calls.
//
// Why not onnxruntime_c_api.h: the onnxruntime wheel ships the shared library but no headers, and
// the header is 400 KB. The C API is a table of function pointers (`OrtApi`) that ONNX Runtime only
// ever appends to (its ABI promise), so an entry's position never changes between releases. The
// positions below are those of onnxruntime_c_api.h (ORT_API_VERSION 29); the signatures are copied
// from it. OrtGetApiBase()->GetApi(kOrtApiVersion) returns the table of any runtime >= 1.16.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {
struct OrtEnv;
struct OrtStatus;
struct OrtSession;
struct OrtSessionOptions;
struct OrtMemoryInfo;
struct OrtValue;
struct OrtRunOptions;
struct OrtTensorTypeAndShapeInfo;

enum OrtLoggingLevel { ORT_LOGGING_LEVEL_VERBOSE, ORT_LOGGING_LEVEL_INFO, ORT_LOGGING_LEVEL_WARNING };
enum GraphOptimizationLevel { ORT_ENABLE_ALL = 99 };
enum ExecutionMode { ORT_SEQUENTIAL = 0 };
enum OrtAllocatorType { OrtDeviceAllocator = 0, OrtArenaAllocator = 1 };
enum OrtMemType { OrtMemTypeDefault = 0 };
enum ONNXTensorElementDataType { ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT = 1 };

struct OrtApi;
struct OrtApiBase {
  const OrtApi* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)();
};
const OrtApiBase* OrtGetApiBase();
}

namespace ort {

//! The table version asked for: every entry used here exists since ONNX Runtime 1.16.
constexpr uint32_t kApiVersion = 16;

//! Typed access to the entries of `OrtApi` this backend uses, by their fixed positions.
class Api {
 public:
  explicit Api(const OrtApi* table) : table_(reinterpret_cast<void* const*>(table)) {}

  OrtStatus* CreateEnv(OrtLoggingLevel level, const char* logid, OrtEnv** out) const {
    return Call<OrtStatus* (*)(OrtLoggingLevel, const char*, OrtEnv**)>(3)(level, logid, out);
  }
  OrtStatus* CreateSession(const OrtEnv* env, const char* path, const OrtSessionOptions* options,
                           OrtSession** out) const {
    return Call<OrtStatus* (*)(const OrtEnv*, const char*, const OrtSessionOptions*, OrtSession**)>(7)(
        env, path, options, out);
  }
  OrtStatus* Run(OrtSession* session, const OrtRunOptions* run_options, const char* const* input_names,
                 const OrtValue* const* inputs, size_t input_len, const char* const* output_names,
                 size_t output_len, OrtValue** outputs) const {
    return Call<OrtStatus* (*)(OrtSession*, const OrtRunOptions*, const char* const*, const OrtValue* const*,
                               size_t, const char* const*, size_t, OrtValue**)>(9)(
        session, run_options, input_names, inputs, input_len, output_names, output_len, outputs);
  }
  OrtStatus* CreateSessionOptions(OrtSessionOptions** out) const {
    return Call<OrtStatus* (*)(OrtSessionOptions**)>(10)(out);
  }
  OrtStatus* SetSessionExecutionMode(OrtSessionOptions* options, ExecutionMode mode) const {
    return Call<OrtStatus* (*)(OrtSessionOptions*, ExecutionMode)>(13)(options, mode);
  }
  OrtStatus* SetSessionGraphOptimizationLevel(OrtSessionOptions* options, GraphOptimizationLevel level) const {
    return Call<OrtStatus* (*)(OrtSessionOptions*, GraphOptimizationLevel)>(23)(options, level);
  }
  OrtStatus* SetIntraOpNumThreads(OrtSessionOptions* options, int threads) const {
    return Call<OrtStatus* (*)(OrtSessionOptions*, int)>(24)(options, threads);
  }
  OrtStatus* SetInterOpNumThreads(OrtSessionOptions* options, int threads) const {
    return Call<OrtStatus* (*)(OrtSessionOptions*, int)>(25)(options, threads);
  }
  OrtStatus* CreateTensorWithDataAsOrtValue(const OrtMemoryInfo* info, void* data, size_t data_len,
                                            const int64_t* shape, size_t shape_len,
                                            ONNXTensorElementDataType type, OrtValue** out) const {
    return Call<OrtStatus* (*)(const OrtMemoryInfo*, void*, size_t, const int64_t*, size_t,
                               ONNXTensorElementDataType, OrtValue**)>(49)(info, data, data_len, shape,
                                                                           shape_len, type, out);
  }
  OrtStatus* GetTensorMutableData(OrtValue* value, void** out) const {
    return Call<OrtStatus* (*)(OrtValue*, void**)>(51)(value, out);
  }
  OrtStatus* GetTensorShapeElementCount(const OrtTensorTypeAndShapeInfo* info, size_t* out) const {
    return Call<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, size_t*)>(64)(info, out);
  }
  OrtStatus* GetTensorTypeAndShape(const OrtValue* value, OrtTensorTypeAndShapeInfo** out) const {
    return Call<OrtStatus* (*)(const OrtValue*, OrtTensorTypeAndShapeInfo**)>(65)(value, out);
  }
  OrtStatus* CreateCpuMemoryInfo(OrtAllocatorType type, OrtMemType mem_type, OrtMemoryInfo** out) const {
    return Call<OrtStatus* (*)(OrtAllocatorType, OrtMemType, OrtMemoryInfo**)>(69)(type, mem_type, out);
  }
  OrtStatus* AddSessionConfigEntry(OrtSessionOptions* options, const char* key, const char* value) const {
    return Call<OrtStatus* (*)(OrtSessionOptions*, const char*, const char*)>(130)(options, key, value);
  }

  const char* GetErrorMessage(const OrtStatus* status) const {
    return Call<const char* (*)(const OrtStatus*)>(2)(status);
  }
  void ReleaseEnv(OrtEnv* p) const { Call<void (*)(OrtEnv*)>(92)(p); }
  void ReleaseStatus(OrtStatus* p) const { Call<void (*)(OrtStatus*)>(93)(p); }
  void ReleaseMemoryInfo(OrtMemoryInfo* p) const { Call<void (*)(OrtMemoryInfo*)>(94)(p); }
  void ReleaseSession(OrtSession* p) const { Call<void (*)(OrtSession*)>(95)(p); }
  void ReleaseValue(OrtValue* p) const { Call<void (*)(OrtValue*)>(96)(p); }
  void ReleaseTensorTypeAndShapeInfo(OrtTensorTypeAndShapeInfo* p) const {
    Call<void (*)(OrtTensorTypeAndShapeInfo*)>(99)(p);
  }
  void ReleaseSessionOptions(OrtSessionOptions* p) const { Call<void (*)(OrtSessionOptions*)>(100)(p); }

 private:
  template <typename Fn>
  Fn Call(size_t position) const {
    return reinterpret_cast<Fn>(table_[position]);
  }
  void* const* table_;
};

}  // namespace ort
