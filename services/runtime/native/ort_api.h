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
struct OrtTypeInfo;
struct OrtAllocator;
struct OrtCUDAProviderOptionsV2;
struct OrtTensorRTProviderOptionsV2;

enum OrtLoggingLevel { ORT_LOGGING_LEVEL_VERBOSE, ORT_LOGGING_LEVEL_INFO, ORT_LOGGING_LEVEL_WARNING };
enum GraphOptimizationLevel { ORT_ENABLE_ALL = 99 };
enum ExecutionMode { ORT_SEQUENTIAL = 0 };
enum OrtAllocatorType { OrtDeviceAllocator = 0, OrtArenaAllocator = 1 };
enum OrtMemType { OrtMemTypeDefault = 0 };
// An int underneath, as in C: ONNX Runtime hands back any of ONNX's TensorProto.DataType values
// (FLOAT16 = 10, INT64 = 7, …); only the types served are named here.
enum ONNXTensorElementDataType : int { ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT = 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 = 2 };
enum ONNXType : int { ONNX_TYPE_UNKNOWN, ONNX_TYPE_TENSOR };
// Every code in declaration order; a newer runtime may return one past the end (an int underneath).
enum OrtErrorCode : int {
  ORT_OK,
  ORT_FAIL,
  ORT_INVALID_ARGUMENT,
  ORT_NO_SUCHFILE,
  ORT_NO_MODEL,
  ORT_ENGINE_ERROR,
  ORT_RUNTIME_EXCEPTION,
  ORT_INVALID_PROTOBUF,
  ORT_MODEL_LOADED,
  ORT_NOT_IMPLEMENTED,
  ORT_INVALID_GRAPH,
  ORT_EP_FAIL,
};

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
  OrtStatus* SessionGetInputCount(const OrtSession* session, size_t* out) const {
    return Call<OrtStatus* (*)(const OrtSession*, size_t*)>(30)(session, out);
  }
  OrtStatus* SessionGetOutputCount(const OrtSession* session, size_t* out) const {
    return Call<OrtStatus* (*)(const OrtSession*, size_t*)>(31)(session, out);
  }
  OrtStatus* SessionGetInputTypeInfo(const OrtSession* session, size_t index, OrtTypeInfo** out) const {
    return Call<OrtStatus* (*)(const OrtSession*, size_t, OrtTypeInfo**)>(33)(session, index, out);
  }
  OrtStatus* SessionGetOutputTypeInfo(const OrtSession* session, size_t index, OrtTypeInfo** out) const {
    return Call<OrtStatus* (*)(const OrtSession*, size_t, OrtTypeInfo**)>(34)(session, index, out);
  }
  OrtStatus* SessionGetInputName(const OrtSession* session, size_t index, OrtAllocator* allocator,
                                 char** out) const {
    return Call<OrtStatus* (*)(const OrtSession*, size_t, OrtAllocator*, char**)>(36)(session, index, allocator,
                                                                                     out);
  }
  OrtStatus* SessionGetOutputName(const OrtSession* session, size_t index, OrtAllocator* allocator,
                                  char** out) const {
    return Call<OrtStatus* (*)(const OrtSession*, size_t, OrtAllocator*, char**)>(37)(session, index, allocator,
                                                                                     out);
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
  OrtStatus* CastTypeInfoToTensorInfo(const OrtTypeInfo* info, const OrtTensorTypeAndShapeInfo** out) const {
    return Call<OrtStatus* (*)(const OrtTypeInfo*, const OrtTensorTypeAndShapeInfo**)>(55)(info, out);
  }
  OrtStatus* GetOnnxTypeFromTypeInfo(const OrtTypeInfo* info, ONNXType* out) const {
    return Call<OrtStatus* (*)(const OrtTypeInfo*, ONNXType*)>(56)(info, out);
  }
  OrtStatus* GetTensorElementType(const OrtTensorTypeAndShapeInfo* info, ONNXTensorElementDataType* out) const {
    return Call<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, ONNXTensorElementDataType*)>(60)(info, out);
  }
  OrtStatus* GetDimensionsCount(const OrtTensorTypeAndShapeInfo* info, size_t* out) const {
    return Call<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, size_t*)>(61)(info, out);
  }
  //! -1 for a dimension the model leaves open (symbolic or unknown).
  OrtStatus* GetDimensions(const OrtTensorTypeAndShapeInfo* info, int64_t* values, size_t count) const {
    return Call<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, int64_t*, size_t)>(62)(info, values, count);
  }
  OrtStatus* GetTensorTypeAndShape(const OrtValue* value, OrtTensorTypeAndShapeInfo** out) const {
    return Call<OrtStatus* (*)(const OrtValue*, OrtTensorTypeAndShapeInfo**)>(65)(value, out);
  }
  //! `name` "Cpu" (id 0) or "Cuda" (id: the device): where a tensor's data lives.
  OrtStatus* CreateMemoryInfo(const char* name, OrtAllocatorType type, int id, OrtMemType mem_type,
                              OrtMemoryInfo** out) const {
    return Call<OrtStatus* (*)(const char*, OrtAllocatorType, int, OrtMemType, OrtMemoryInfo**)>(68)(name, type, id,
                                                                                                     mem_type, out);
  }
  OrtStatus* AllocatorFree(OrtAllocator* allocator, void* p) const {
    return Call<OrtStatus* (*)(OrtAllocator*, void*)>(76)(allocator, p);
  }
  //! ONNX Runtime's own CPU allocator (not to be released): it owns the names Session*Name return.
  OrtStatus* GetAllocatorWithDefaultOptions(OrtAllocator** out) const {
    return Call<OrtStatus* (*)(OrtAllocator**)>(78)(out);
  }
  OrtStatus* AddSessionConfigEntry(OrtSessionOptions* options, const char* key, const char* value) const {
    return Call<OrtStatus* (*)(OrtSessionOptions*, const char*, const char*)>(130)(options, key, value);
  }
  //! The execution providers this build of ONNX Runtime has ("CUDAExecutionProvider", …), its own array.
  OrtStatus* GetAvailableProviders(char*** out, int* count) const {
    return Call<OrtStatus* (*)(char***, int*)>(125)(out, count);
  }
  OrtStatus* ReleaseAvailableProviders(char** providers, int count) const {
    return Call<OrtStatus* (*)(char**, int)>(126)(providers, count);
  }
  // The TensorRT execution provider (V2 options). A build without it answers each of these with an error.
  OrtStatus* SessionOptionsAppendExecutionProvider_TensorRT_V2(OrtSessionOptions* options,
                                                              const OrtTensorRTProviderOptionsV2* trt) const {
    return Call<OrtStatus* (*)(OrtSessionOptions*, const OrtTensorRTProviderOptionsV2*)>(170)(options, trt);
  }
  OrtStatus* CreateTensorRTProviderOptions(OrtTensorRTProviderOptionsV2** out) const {
    return Call<OrtStatus* (*)(OrtTensorRTProviderOptionsV2**)>(171)(out);
  }
  OrtStatus* UpdateTensorRTProviderOptions(OrtTensorRTProviderOptionsV2* trt, const char* const* keys,
                                           const char* const* values, size_t count) const {
    return Call<OrtStatus* (*)(OrtTensorRTProviderOptionsV2*, const char* const*, const char* const*, size_t)>(172)(
        trt, keys, values, count);
  }
  void ReleaseTensorRTProviderOptions(OrtTensorRTProviderOptionsV2* p) const {
    Call<void (*)(OrtTensorRTProviderOptionsV2*)>(174)(p);
  }
  // The CUDA execution provider (V2 options). A build without it answers each of these with an error.
  OrtStatus* SessionOptionsAppendExecutionProvider_CUDA_V2(OrtSessionOptions* options,
                                                          const OrtCUDAProviderOptionsV2* cuda) const {
    return Call<OrtStatus* (*)(OrtSessionOptions*, const OrtCUDAProviderOptionsV2*)>(204)(options, cuda);
  }
  OrtStatus* CreateCUDAProviderOptions(OrtCUDAProviderOptionsV2** out) const {
    return Call<OrtStatus* (*)(OrtCUDAProviderOptionsV2**)>(205)(out);
  }
  OrtStatus* UpdateCUDAProviderOptions(OrtCUDAProviderOptionsV2* cuda, const char* const* keys,
                                       const char* const* values, size_t count) const {
    return Call<OrtStatus* (*)(OrtCUDAProviderOptionsV2*, const char* const*, const char* const*, size_t)>(206)(
        cuda, keys, values, count);
  }
  void ReleaseCUDAProviderOptions(OrtCUDAProviderOptionsV2* p) const {
    Call<void (*)(OrtCUDAProviderOptionsV2*)>(208)(p);
  }

  OrtErrorCode GetErrorCode(const OrtStatus* status) const {
    return Call<OrtErrorCode (*)(const OrtStatus*)>(1)(status);
  }
  const char* GetErrorMessage(const OrtStatus* status) const {
    return Call<const char* (*)(const OrtStatus*)>(2)(status);
  }
  void ReleaseEnv(OrtEnv* p) const { Call<void (*)(OrtEnv*)>(92)(p); }
  void ReleaseStatus(OrtStatus* p) const { Call<void (*)(OrtStatus*)>(93)(p); }
  void ReleaseMemoryInfo(OrtMemoryInfo* p) const { Call<void (*)(OrtMemoryInfo*)>(94)(p); }
  void ReleaseSession(OrtSession* p) const { Call<void (*)(OrtSession*)>(95)(p); }
  void ReleaseValue(OrtValue* p) const { Call<void (*)(OrtValue*)>(96)(p); }
  void ReleaseTypeInfo(OrtTypeInfo* p) const { Call<void (*)(OrtTypeInfo*)>(98)(p); }
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
