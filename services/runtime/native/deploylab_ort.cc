// deploylab_ort: a Triton backend that runs an exported model.onnx with ONNX Runtime inside tritonserver.
//
// Why it exists: Triton's own onnxruntime backend ships only in NVIDIA's container images, and the
// Python backend (model.py) pays for a stub process per instance: requests cross into it over shared
// memory and responses come back the same way, about 5 % of two cores at saturation for
// mobilenet_v3_large (docs/benchmarks.md). Here a batch is ONNX Runtime's input without leaving the
// server: one request's tensor is used in place, several are copied once into a reused buffer.
//
// Scope, kept small on purpose: one FP32 or UINT8 input and one FP32 output whose first axis is the batch, the
// parameters deploylab writes (`intra_op_thread_count`, `inter_op_thread_count`, `allow_spinning`,
// `execution_provider`, `trt_engine_cache_path`). Anything else is refused at load with a message that says so.
//
// Devices: a KIND_CPU instance runs on ONNX Runtime's CPU provider, or on its CUDA provider (GPU 0) with
// `execution_provider: "cuda"`; a KIND_GPU instance runs on the CUDA provider on the GPU Triton placed
// it on. `execution_provider: "tensorrt"` puts TensorRT's provider (fp16, one engine for batches 1 to
// max_batch_size, cached on disk) ahead of CUDA's, on either kind of instance. Both providers come with
// the onnxruntime-gpu wheel (TensorRT's also needs NVIDIA's TensorRT libraries); linked against the CPU
// wheel, a model asking for one is refused at load, naming the providers that ONNX Runtime has.
//
// A request's input is read where it is: in host memory, or in GPU memory when a client on the same host
// sends it through Triton's CUDA shared memory. A CUDA instance runs on one request's tensor in place
// (ONNX Runtime copies a host one to the GPU) and stacks a batch of several on the device, each request
// copied there once; a CPU instance stacks in host memory (cuda_runtime.h copies what is on a GPU).
// Responses are in host memory.
//
// The model is not trusted to match its config: each instance compares its session's input and output
// (name, element type, dims) with config.pbtxt at load, and every batch's output type and shape is
// checked again before a byte of it is copied into Triton's buffers.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "ort_api.h"
#include "triton_api.h"

namespace {

using json = nlohmann::json;

std::unique_ptr<ort::Api> g_ort;  // ONNX Runtime's API table, set once in TRITONBACKEND_Initialize
OrtEnv* g_env = nullptr;          // one per process: ONNX Runtime's logging and global state
OrtMemoryInfo* g_cpu = nullptr;   // "this tensor lives in CPU memory", for wrapping Triton's buffers

uint64_t NowNs() {
  // Triton's own timestamps come from steady_clock too, so queue and compute times line up.
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TRITONSERVER_Error* Error(TRITONSERVER_Error_Code code, const std::string& message) {
  return TRITONSERVER_ErrorNew(code, ("deploylab_ort: " + message).c_str());
}

void LogAt(TRITONSERVER_LogLevel level, int line, const std::string& message) {
  TRITONSERVER_Error* err = TRITONSERVER_LogMessage(level, __FILE__, line, message.c_str());
  if (err != nullptr) TRITONSERVER_ErrorDelete(err);
}
#define Log(level, message) LogAt(level, __LINE__, message)

//! How each ONNX Runtime error reaches Triton's clients, by whose fault it is (over HTTP Triton answers
//! INVALID_ARG 400, NOT_FOUND 404, UNSUPPORTED 501, UNAVAILABLE 503, INTERNAL 500). INVALID_ARGUMENT
//! while running is the request's values: the model's input type and dims were checked at load.
struct OrtErrorRoute {
  OrtErrorCode ort;
  const char* name;
  TRITONSERVER_Error_Code triton;
};
constexpr OrtErrorRoute kOrtErrors[] = {
    {ORT_FAIL, "FAIL", TRITONSERVER_ERROR_INTERNAL},
    {ORT_INVALID_ARGUMENT, "INVALID_ARGUMENT", TRITONSERVER_ERROR_INVALID_ARG},
    {ORT_NO_SUCHFILE, "NO_SUCHFILE", TRITONSERVER_ERROR_NOT_FOUND},
    {ORT_NO_MODEL, "NO_MODEL", TRITONSERVER_ERROR_NOT_FOUND},
    {ORT_ENGINE_ERROR, "ENGINE_ERROR", TRITONSERVER_ERROR_INTERNAL},
    {ORT_RUNTIME_EXCEPTION, "RUNTIME_EXCEPTION", TRITONSERVER_ERROR_INTERNAL},
    {ORT_INVALID_PROTOBUF, "INVALID_PROTOBUF", TRITONSERVER_ERROR_INVALID_ARG},  // model.onnx is no model
    {ORT_MODEL_LOADED, "MODEL_LOADED", TRITONSERVER_ERROR_INTERNAL},
    {ORT_NOT_IMPLEMENTED, "NOT_IMPLEMENTED", TRITONSERVER_ERROR_UNSUPPORTED},    // an op or type ORT lacks
    {ORT_INVALID_GRAPH, "INVALID_GRAPH", TRITONSERVER_ERROR_INVALID_ARG},
    {ORT_EP_FAIL, "EP_FAIL", TRITONSERVER_ERROR_UNAVAILABLE},
};

constexpr bool RoutesEveryOrtErrorOnce() {
  for (int code = ORT_FAIL; code <= ORT_EP_FAIL; ++code) {
    int routes = 0;
    for (const OrtErrorRoute& route : kOrtErrors) routes += route.ort == code ? 1 : 0;
    if (routes != 1) return false;
  }
  return std::size(kOrtErrors) == ORT_EP_FAIL;
}
static_assert(RoutesEveryOrtErrorOnce(), "kOrtErrors routes each OrtErrorCode but ORT_OK exactly once");

//! An ONNX Runtime status as a Triton error (nullptr stays nullptr), coded by kOrtErrors; releases it.
TRITONSERVER_Error* FromOrt(OrtStatus* status, const std::string& what) {
  if (status == nullptr) return nullptr;
  const OrtErrorCode code = g_ort->GetErrorCode(status);
  OrtErrorRoute route{code, nullptr, TRITONSERVER_ERROR_INTERNAL};  // a code newer than this table
  for (const OrtErrorRoute& known : kOrtErrors) {
    if (known.ort == code) route = known;
  }
  std::string name = route.name != nullptr ? route.name : "code " + std::to_string(code);
  std::string message = what + ": [ONNX Runtime " + name + "] " + g_ort->GetErrorMessage(status);
  g_ort->ReleaseStatus(status);
  return Error(route.triton, message);
}

#define RETURN_IF_ERROR(expr)                   \
  do {                                          \
    TRITONSERVER_Error* rie_err__ = (expr);     \
    if (rie_err__ != nullptr) return rie_err__; \
  } while (false)

int64_t ElementCount(const std::vector<int64_t>& dims) {
  return std::accumulate(dims.begin(), dims.end(), int64_t{1}, std::multiplies<int64_t>());
}

std::string DimsText(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t axis = 0; axis < dims.size(); ++axis) text += (axis > 0 ? ", " : "") + std::to_string(dims[axis]);
  return text + "]";
}

//! ONNX's element type names (TensorProto.DataType), by value, for messages.
constexpr const char* kOnnxTypes[] = {
    "UNDEFINED", "FLOAT",     "UINT8",  "INT8",         "UINT16",         "INT16",      "INT32",
    "INT64",     "STRING",    "BOOL",   "FLOAT16",      "DOUBLE",         "UINT32",     "UINT64",
    "COMPLEX64", "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ",
    "UINT4",     "INT4",      "FLOAT4E2M1"};

std::string OnnxTypeName(int type) {
  if (type >= 0 && type < static_cast<int>(std::size(kOnnxTypes))) return kOnnxTypes[type];
  return "element type " + std::to_string(type);
}

//! What the model's config.pbtxt says, read once per model load.
//! An element type this backend serves: its name in config.pbtxt, in Triton and in ONNX, and its size.
struct TensorType {
  const char* config_name = "TYPE_FP32";
  const char* triton_name = "FP32";
  TRITONSERVER_DataType triton = TRITONSERVER_TYPE_FP32;
  ONNXTensorElementDataType onnx = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  int64_t bytes = sizeof(float);
};

const TensorType kFp32{"TYPE_FP32", "FP32", TRITONSERVER_TYPE_FP32, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, sizeof(float)};
//! The output's type, always.
const TensorType& kOutputType = kFp32;
//! FP32 tensors, or uint8 pixels (`deploylab export --input uint8`: a quarter of the bytes per request).
const TensorType kInputTypes[] = {
    kFp32,
    {"TYPE_UINT8", "UINT8", TRITONSERVER_TYPE_UINT8, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, sizeof(uint8_t)},
};

struct ModelState {
  std::string name;
  std::string onnx_path;
  int64_t max_batch_size = 0;
  std::string input_name;
  std::string output_name;
  std::vector<int64_t> item_input_dims;   // one batch item, without the batch axis
  std::vector<int64_t> item_output_dims;  // idem
  TensorType input_type;                  // FP32, or UINT8 pixels the graph normalises itself
  int intra_op_threads = 1;
  int inter_op_threads = 1;
  std::string allow_spinning;      // "", "0" or "1"
  std::string execution_provider;  // "", "cpu", "cuda" or "tensorrt"
  std::string trt_engine_cache_path;  // TensorRT's built engines; "" : under $TMPDIR
};

//! Where one instance runs: ONNX Runtime's CPU provider, or its CUDA provider on `device_id`.
struct Placement {
  bool cuda = false;
  bool tensorrt = false;  // TensorRT's provider ahead of CUDA's (cuda is then true too)
  int32_t device_id = 0;
};

struct InstanceState {
  ModelState* model = nullptr;
  std::string name;
  Placement place;
  OrtSession* session = nullptr;  // one per instance: one copy of the weights each, no more
  std::vector<char> staging;      // the batch, when more than one buffer makes it up
  // A CUDA instance's inputs that arrive in GPU memory: their location for ONNX Runtime, and the device
  // buffer a batch of several is stacked in (allocated at first use, grown to the largest batch).
  OrtMemoryInfo* device_memory = nullptr;
  void* device_staging = nullptr;
  size_t device_staging_bytes = 0;
  ~InstanceState() {
    if (session != nullptr) g_ort->ReleaseSession(session);
    if (device_memory != nullptr) g_ort->ReleaseMemoryInfo(device_memory);
    std::string unused;
    if (device_staging != nullptr) cuda::Runtime::Get(&unused)->Release(device_staging);
  }
};

std::string Parameter(const json& config, const char* key) {
  const json& parameters = config.value("parameters", json::object());
  auto found = parameters.find(key);
  if (found == parameters.end()) return "";
  return found->value("string_value", "");
}

//! Triton dims of a tensor, without the batch axis (implicit with max_batch_size > 0, spelled -1 if 0).
TRITONSERVER_Error* ItemDims(const json& tensor, int64_t max_batch_size, std::vector<int64_t>* dims) {
  std::vector<int64_t> all;
  for (const json& dim : tensor.at("dims")) all.push_back(dim.is_string() ? std::stoll(dim.get<std::string>()) : dim.get<int64_t>());
  if (max_batch_size == 0) {
    if (all.empty() || all.front() != -1) {
      return Error(TRITONSERVER_ERROR_INVALID_ARG, "with max_batch_size 0 the first dim must be -1 (the batch)");
    }
    all.erase(all.begin());
  }
  for (int64_t dim : all) {
    if (dim < 1) return Error(TRITONSERVER_ERROR_INVALID_ARG, "only the batch axis may be variable");
  }
  *dims = all;
  return nullptr;
}

TRITONSERVER_Error* ReadModelState(TRITONBACKEND_Model* model, ModelState* state) {
  const char* name = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelName(model, &name));
  state->name = name;
  uint64_t version = 0;
  RETURN_IF_ERROR(TRITONBACKEND_ModelVersion(model, &version));
  TRITONBACKEND_ArtifactType artifact;
  const char* location = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelRepository(model, &artifact, &location));

  TRITONSERVER_Message* message = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelConfig(model, 1, &message));
  const char* text = nullptr;
  size_t size = 0;
  TRITONSERVER_Error* err = TRITONSERVER_MessageSerializeToJson(message, &text, &size);
  json config;
  if (err == nullptr) config = json::parse(text, text + size, nullptr, false);
  TRITONSERVER_Error* deleted = TRITONSERVER_MessageDelete(message);
  if (deleted != nullptr) TRITONSERVER_ErrorDelete(deleted);
  RETURN_IF_ERROR(err);
  if (config.is_discarded()) return Error(TRITONSERVER_ERROR_INTERNAL, "model config is not JSON");

  try {
    std::string filename = config.value("default_model_filename", "");
    state->onnx_path = std::string(location) + "/" + std::to_string(version) + "/" +
                       (filename.empty() ? std::string("model.onnx") : filename);
    state->max_batch_size = config.value("max_batch_size", int64_t{0});
    const json& inputs = config.at("input");
    const json& outputs = config.at("output");
    if (inputs.size() != 1 || outputs.size() != 1) {
      return Error(TRITONSERVER_ERROR_UNSUPPORTED, "serves models with exactly one input and one output");
    }
    const std::string input_type = inputs[0].value("data_type", "");
    const TensorType* known = nullptr;
    for (const TensorType& candidate : kInputTypes) {
      if (input_type == candidate.config_name) known = &candidate;
    }
    if (known == nullptr || outputs[0].value("data_type", "") != kOutputType.config_name) {
      return Error(TRITONSERVER_ERROR_UNSUPPORTED, "serves a TYPE_FP32 or TYPE_UINT8 input and a TYPE_FP32 output");
    }
    state->input_type = *known;
    state->input_name = inputs[0].at("name").get<std::string>();
    state->output_name = outputs[0].at("name").get<std::string>();
    RETURN_IF_ERROR(ItemDims(inputs[0], state->max_batch_size, &state->item_input_dims));
    RETURN_IF_ERROR(ItemDims(outputs[0], state->max_batch_size, &state->item_output_dims));
    std::string intra = Parameter(config, "intra_op_thread_count");
    std::string inter = Parameter(config, "inter_op_thread_count");
    state->intra_op_threads = intra.empty() ? 1 : std::stoi(intra);
    state->inter_op_threads = inter.empty() ? 1 : std::stoi(inter);
    state->allow_spinning = Parameter(config, "allow_spinning");
    state->execution_provider = Parameter(config, "execution_provider");
    state->trt_engine_cache_path = Parameter(config, "trt_engine_cache_path");
  } catch (const std::exception& exc) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, std::string("unexpected model config: ") + exc.what());
  }
  if (state->intra_op_threads < 0 || state->inter_op_threads < 0) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, "thread counts must be >= 0 (0 lets ONNX Runtime decide)");
  }
  if (!state->allow_spinning.empty() && state->allow_spinning != "0" && state->allow_spinning != "1") {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, "allow_spinning must be \"0\" or \"1\"");
  }
  const std::string& provider = state->execution_provider;
  if (!provider.empty() && provider != "cpu" && provider != "cuda" && provider != "tensorrt") {
    return Error(TRITONSERVER_ERROR_INVALID_ARG,
                 "execution_provider must be \"cpu\", \"cuda\" or \"tensorrt\", not \"" + provider + "\"");
  }
  return nullptr;
}

//! The instance's placement from its kind and the model's `execution_provider`; refuses what cannot be.
TRITONSERVER_Error* PlaceInstance(TRITONBACKEND_ModelInstance* instance, const ModelState& model, Placement* place) {
  TRITONSERVER_InstanceGroupKind kind;
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceKind(instance, &kind));
  place->tensorrt = model.execution_provider == "tensorrt";
  if (kind == TRITONSERVER_INSTANCEGROUPKIND_CPU) {
    place->cuda = model.execution_provider == "cuda" || place->tensorrt;
    place->device_id = 0;
    return nullptr;
  }
  if (kind != TRITONSERVER_INSTANCEGROUPKIND_GPU) {
    return Error(TRITONSERVER_ERROR_UNSUPPORTED, "serves KIND_CPU and KIND_GPU instances only");
  }
  if (model.execution_provider == "cpu") {
    return Error(TRITONSERVER_ERROR_INVALID_ARG,
                 "a KIND_GPU instance runs on the CUDA provider: execution_provider \"cpu\" contradicts it");
  }
  place->cuda = true;
  return TRITONBACKEND_ModelInstanceDeviceId(instance, &place->device_id);
}

//! The providers this ONNX Runtime build has ("CPUExecutionProvider", …).
std::vector<std::string> AvailableProviders() {
  char** providers = nullptr;
  int count = 0;
  std::vector<std::string> names;
  OrtStatus* status = g_ort->GetAvailableProviders(&providers, &count);
  if (status != nullptr) {
    g_ort->ReleaseStatus(status);
    return names;
  }
  names.assign(providers, providers + count);
  status = g_ort->ReleaseAvailableProviders(providers, count);
  if (status != nullptr) g_ort->ReleaseStatus(status);
  return names;
}

//! nullptr when the linked ONNX Runtime has `<id>ExecutionProvider`, else a refusal: what to install first
//! (Triton's log lines get cut), then the providers it has.
TRITONSERVER_Error* RequireProvider(const char* id, const char* label, const char* asked, const char* install) {
  const std::string provider = std::string(id) + "ExecutionProvider";
  const std::vector<std::string> names = AvailableProviders();
  if (std::find(names.begin(), names.end(), provider) != names.end()) return nullptr;
  std::string listed;
  for (const std::string& name : names) listed += (listed.empty() ? "" : ", ") + name;
  const std::string version = OrtGetApiBase()->GetVersionString();
  return Error(TRITONSERVER_ERROR_UNSUPPORTED,
               std::string("execution_provider ") + asked + " needs ONNX Runtime's " + label +
                   " provider (install onnxruntime-gpu==" + version + install + "); this one has " +
                   (listed.empty() ? std::string("(unknown)") : listed));
}

//! ONNX Runtime's CUDA provider on `device_id`, ahead of the CPU provider (nodes CUDA lacks run there).
TRITONSERVER_Error* AppendCuda(OrtSessionOptions* options, int32_t device_id) {
  RETURN_IF_ERROR(RequireProvider("CUDA", "CUDA", "cuda", ""));
  OrtCUDAProviderOptionsV2* cuda = nullptr;
  RETURN_IF_ERROR(FromOrt(g_ort->CreateCUDAProviderOptions(&cuda), "CUDA provider options"));
  std::unique_ptr<OrtCUDAProviderOptionsV2, void (*)(OrtCUDAProviderOptionsV2*)> owned(
      cuda, [](OrtCUDAProviderOptionsV2* p) { g_ort->ReleaseCUDAProviderOptions(p); });
  const std::string device = std::to_string(device_id);
  const char* keys[] = {"device_id"};
  const char* values[] = {device.c_str()};
  RETURN_IF_ERROR(FromOrt(g_ort->UpdateCUDAProviderOptions(cuda, keys, values, 1), "CUDA provider options"));
  return FromOrt(g_ort->SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda),
                 "CUDA execution provider on GPU " + device);
}

//! TensorRT's shape profile for the input: `name:1x3x224x224` for batch 1, likewise for `batch`.
std::string ProfileShape(const ModelState& model, int64_t batch) {
  std::string shape = model.input_name + ":" + std::to_string(batch);
  for (int64_t dim : model.item_input_dims) shape += "x" + std::to_string(dim);
  return shape;
}

//! ONNX Runtime's TensorRT provider on `device_id` in fp16, ahead of CUDA's (nodes TensorRT lacks run
//! there). One engine covers batches 1 to max_batch_size (an explicit profile; without one TensorRT builds
//! an engine per new batch size), and built engines are cached on disk: building one takes minutes.
TRITONSERVER_Error* AppendTensorRT(OrtSessionOptions* options, const ModelState& model, int32_t device_id) {
  RETURN_IF_ERROR(RequireProvider("Tensorrt", "TensorRT", "tensorrt", " and the tensorrt wheels"));
  OrtTensorRTProviderOptionsV2* trt = nullptr;
  RETURN_IF_ERROR(FromOrt(g_ort->CreateTensorRTProviderOptions(&trt), "TensorRT provider options"));
  std::unique_ptr<OrtTensorRTProviderOptionsV2, void (*)(OrtTensorRTProviderOptionsV2*)> owned(
      trt, [](OrtTensorRTProviderOptionsV2* p) { g_ort->ReleaseTensorRTProviderOptions(p); });
  std::string cache = model.trt_engine_cache_path;
  if (cache.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    cache = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/deploylab_trt/" + model.name;
  }
  const std::string device = std::to_string(device_id);
  const std::string smallest = ProfileShape(model, 1);
  const std::string largest = ProfileShape(model, std::max<int64_t>(model.max_batch_size, 1));
  const char* keys[] = {"device_id",           "trt_fp16_enable",        "trt_engine_cache_enable",
                        "trt_engine_cache_path", "trt_profile_min_shapes", "trt_profile_opt_shapes",
                        "trt_profile_max_shapes"};
  const char* values[] = {device.c_str(), "1", "1", cache.c_str(), smallest.c_str(), largest.c_str(), largest.c_str()};
  RETURN_IF_ERROR(FromOrt(g_ort->UpdateTensorRTProviderOptions(trt, keys, values, std::size(keys)),
                          "TensorRT provider options"));
  return FromOrt(g_ort->SessionOptionsAppendExecutionProvider_TensorRT_V2(options, trt),
                 "TensorRT execution provider on GPU " + device);
}

TRITONSERVER_Error* CreateSession(const ModelState& model, const Placement& place, OrtSession** session) {
  OrtSessionOptions* options = nullptr;
  RETURN_IF_ERROR(FromOrt(g_ort->CreateSessionOptions(&options), "session options"));
  std::unique_ptr<OrtSessionOptions, void (*)(OrtSessionOptions*)> owned(
      options, [](OrtSessionOptions* p) { g_ort->ReleaseSessionOptions(p); });
  RETURN_IF_ERROR(FromOrt(g_ort->SetIntraOpNumThreads(options, model.intra_op_threads), "intra-op threads"));
  RETURN_IF_ERROR(FromOrt(g_ort->SetInterOpNumThreads(options, model.inter_op_threads), "inter-op threads"));
  RETURN_IF_ERROR(FromOrt(g_ort->SetSessionExecutionMode(options, ORT_SEQUENTIAL), "execution mode"));
  RETURN_IF_ERROR(FromOrt(g_ort->SetSessionGraphOptimizationLevel(options, ORT_ENABLE_ALL), "optimization"));
  // Same rule as model.py: a spinning intra-op pool competes with Triton's batcher and HTTP threads
  // for the cores (docs/benchmarks.md); `allow_spinning: "1"` brings it back.
  std::string spinning = model.allow_spinning;
  if (spinning.empty() && model.intra_op_threads != 1) spinning = "0";
  if (!spinning.empty()) {
    RETURN_IF_ERROR(FromOrt(g_ort->AddSessionConfigEntry(options, "session.intra_op.allow_spinning", spinning.c_str()),
                            "allow_spinning"));
  }
  if (place.tensorrt) RETURN_IF_ERROR(AppendTensorRT(options, model, place.device_id));
  if (place.cuda) RETURN_IF_ERROR(AppendCuda(options, place.device_id));
  return FromOrt(g_ort->CreateSession(g_env, model.onnx_path.c_str(), options, session),
                 "loading " + model.onnx_path);
}

//! What the ONNX model declares for one of its inputs or outputs.
struct OnnxTensor {
  std::string name;
  bool is_tensor = false;  // not a sequence, map or optional
  int element_type = 0;
  std::vector<int64_t> dims;  // -1 where the model leaves a dimension open
};

TRITONSERVER_Error* DescribeTensor(const OrtTypeInfo* type_info, OnnxTensor* tensor) {
  ONNXType kind = ONNX_TYPE_UNKNOWN;
  RETURN_IF_ERROR(FromOrt(g_ort->GetOnnxTypeFromTypeInfo(type_info, &kind), "type of " + tensor->name));
  tensor->is_tensor = kind == ONNX_TYPE_TENSOR;
  if (!tensor->is_tensor) return nullptr;
  const OrtTensorTypeAndShapeInfo* info = nullptr;  // owned by type_info
  RETURN_IF_ERROR(FromOrt(g_ort->CastTypeInfoToTensorInfo(type_info, &info), "type of " + tensor->name));
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  RETURN_IF_ERROR(FromOrt(g_ort->GetTensorElementType(info, &type), "element type of " + tensor->name));
  tensor->element_type = type;
  size_t rank = 0;
  RETURN_IF_ERROR(FromOrt(g_ort->GetDimensionsCount(info, &rank), "dims of " + tensor->name));
  tensor->dims.assign(rank, 0);
  return FromOrt(g_ort->GetDimensions(info, tensor->dims.data(), rank), "dims of " + tensor->name);
}

//! The session's inputs (`outputs` false) or outputs as the ONNX model declares them.
TRITONSERVER_Error* SessionTensors(OrtSession* session, bool outputs, std::vector<OnnxTensor>* tensors) {
  OrtAllocator* allocator = nullptr;
  RETURN_IF_ERROR(FromOrt(g_ort->GetAllocatorWithDefaultOptions(&allocator), "allocator"));
  size_t count = 0;
  RETURN_IF_ERROR(FromOrt(outputs ? g_ort->SessionGetOutputCount(session, &count)
                                  : g_ort->SessionGetInputCount(session, &count),
                          "the model's tensors"));
  for (size_t index = 0; index < count; ++index) {
    OnnxTensor tensor;
    char* name = nullptr;
    RETURN_IF_ERROR(FromOrt(outputs ? g_ort->SessionGetOutputName(session, index, allocator, &name)
                                    : g_ort->SessionGetInputName(session, index, allocator, &name),
                            "the model's tensor names"));
    tensor.name = name;
    RETURN_IF_ERROR(FromOrt(g_ort->AllocatorFree(allocator, name), "the model's tensor names"));
    OrtTypeInfo* type_info = nullptr;
    RETURN_IF_ERROR(FromOrt(outputs ? g_ort->SessionGetOutputTypeInfo(session, index, &type_info)
                                    : g_ort->SessionGetInputTypeInfo(session, index, &type_info),
                            "type of " + tensor.name));
    TRITONSERVER_Error* err = DescribeTensor(type_info, &tensor);
    g_ort->ReleaseTypeInfo(type_info);
    RETURN_IF_ERROR(err);
    tensors->push_back(std::move(tensor));
  }
  return nullptr;
}

std::string Names(const std::vector<OnnxTensor>& tensors) {
  std::string names;
  for (const OnnxTensor& tensor : tensors) names += (names.empty() ? "'" : ", '") + tensor.name + "'";
  return names.empty() ? "none" : names;
}

//! nullptr when the model's tensor is what config.pbtxt declares: its element type, batch axis open, same
//! item dims.
TRITONSERVER_Error* CheckTensor(const char* role, const OnnxTensor& tensor, const std::vector<int64_t>& item_dims,
                                const TensorType& declared) {
  const std::string what = std::string(role) + " '" + tensor.name + "'";
  if (!tensor.is_tensor) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, what + " is not a tensor in the ONNX model but a " +
                                                     declared.config_name + " tensor in config.pbtxt");
  }
  if (tensor.element_type != declared.onnx) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, what + " is " + OnnxTypeName(tensor.element_type) +
                                                     " in the ONNX model but " + declared.config_name +
                                                     " in config.pbtxt");
  }
  std::vector<int64_t> expected{-1};
  expected.insert(expected.end(), item_dims.begin(), item_dims.end());
  bool agrees = tensor.dims.size() == expected.size() && tensor.dims.front() == -1;
  for (size_t axis = 1; agrees && axis < expected.size(); ++axis) {
    agrees = tensor.dims[axis] == -1 || tensor.dims[axis] == expected[axis];
  }
  if (!agrees) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, what + " has dims " + DimsText(tensor.dims) +
                                                     " in the ONNX model but " + DimsText(expected) +
                                                     " in config.pbtxt (-1 first: the batch, left open)");
  }
  return nullptr;
}

//! Refuse a session whose model differs from config.pbtxt, so that nothing is ever copied on trust.
TRITONSERVER_Error* CheckSession(const ModelState& model, OrtSession* session) {
  std::vector<OnnxTensor> inputs;
  std::vector<OnnxTensor> outputs;
  RETURN_IF_ERROR(SessionTensors(session, false, &inputs));
  RETURN_IF_ERROR(SessionTensors(session, true, &outputs));
  if (inputs.size() != 1 || inputs.front().name != model.input_name) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, "config.pbtxt declares the input '" + model.input_name +
                                                     "', the ONNX model's inputs are " + Names(inputs) +
                                                     " (this backend serves models with exactly one)");
  }
  RETURN_IF_ERROR(CheckTensor("input", inputs.front(), model.item_input_dims, model.input_type));
  for (const OnnxTensor& output : outputs) {
    if (output.name == model.output_name) {
      return CheckTensor("output", output, model.item_output_dims, kOutputType);
    }
  }
  return Error(TRITONSERVER_ERROR_INVALID_ARG, "config.pbtxt declares the output '" + model.output_name +
                                                   "', the ONNX model's outputs are " + Names(outputs));
}

//! One of Triton's buffers of a request's input, in host or GPU memory.
struct Piece {
  const void* data = nullptr;
  size_t size = 0;
  bool on_gpu = false;
  int64_t device = 0;  // the GPU it is on, when on_gpu
};

//! One request's share of the batch: where its input bytes are, how many items, or why it failed.
struct Slice {
  TRITONBACKEND_Request* request = nullptr;
  int64_t items = 0;
  std::vector<Piece> buffers;
  TRITONSERVER_Error* error = nullptr;  // owned until the response is sent
  const char* rows = nullptr;           // its part of a checked batch output, once run
  size_t rows_bytes = 0;
  bool ok = false;                      // answered with its rows
};

TRITONSERVER_Error* ReadSlice(const ModelState& model, int64_t item_bytes, Slice* slice) {
  TRITONBACKEND_Input* input = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_RequestInput(slice->request, model.input_name.c_str(), &input));
  TRITONSERVER_DataType datatype;
  const int64_t* shape = nullptr;
  uint32_t dims = 0;
  uint64_t byte_size = 0;
  uint32_t buffer_count = 0;
  RETURN_IF_ERROR(TRITONBACKEND_InputProperties(input, nullptr, &datatype, &shape, &dims, &byte_size, &buffer_count));
  // Triton checks these against config.pbtxt before a request gets here; they are checked again
  // because the bytes are copied (or handed to ONNX Runtime) by this count.
  std::vector<int64_t> item_shape(shape + std::min<uint32_t>(dims, 1), shape + dims);
  if (datatype != model.input_type.triton || dims < 1 || item_shape != model.item_input_dims) {
    std::vector<int64_t> expected{-1};
    expected.insert(expected.end(), model.item_input_dims.begin(), model.item_input_dims.end());
    return Error(TRITONSERVER_ERROR_INVALID_ARG, "input '" + model.input_name + "' must be " +
                                                     model.input_type.triton_name + " " + DimsText(expected) +
                                                     " (-1: the batch)");
  }
  slice->items = shape[0];
  if (slice->items < 1 || byte_size != static_cast<uint64_t>(slice->items * item_bytes)) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, "input byte size does not match its shape");
  }
  uint64_t buffered = 0;
  for (uint32_t index = 0; index < buffer_count; ++index) {
    const void* buffer = nullptr;
    uint64_t size = 0;
    TRITONSERVER_MemoryType memory = TRITONSERVER_MEMORY_CPU;
    int64_t memory_id = 0;
    RETURN_IF_ERROR(TRITONBACKEND_InputBuffer(input, index, &buffer, &size, &memory, &memory_id));
    const bool on_gpu = memory == TRITONSERVER_MEMORY_GPU;
    std::string why;
    if (on_gpu && cuda::Runtime::Get(&why) == nullptr) {
      return Error(TRITONSERVER_ERROR_UNSUPPORTED, "input in GPU memory, but " + why);
    }
    slice->buffers.push_back({buffer, static_cast<size_t>(size), on_gpu, memory_id});
    buffered += size;
  }
  if (buffered != byte_size) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, "input buffers hold " + std::to_string(buffered) +
                                                     " bytes, its shape needs " + std::to_string(byte_size));
  }
  return nullptr;
}

//! A batch's output: owned by ONNX Runtime until this is destroyed; `bytes` of FP32 at `data`.
struct BatchOutput {
  OrtValue* value = nullptr;
  const char* data = nullptr;
  size_t bytes = 0;
  BatchOutput() = default;
  BatchOutput(const BatchOutput&) = delete;
  BatchOutput& operator=(const BatchOutput&) = delete;
  ~BatchOutput() {
    if (value != nullptr) g_ort->ReleaseValue(value);
  }
};

//! nullptr when ONNX Runtime's output is FP32 with the config's dims for a batch of `total`.
TRITONSERVER_Error* CheckOutput(const ModelState& model, int64_t total, BatchOutput* output) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  RETURN_IF_ERROR(FromOrt(g_ort->GetTensorTypeAndShape(output->value, &info), "output shape"));
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  size_t rank = 0;
  std::vector<int64_t> dims;
  TRITONSERVER_Error* err = FromOrt(g_ort->GetTensorElementType(info, &type), "output type");
  if (err == nullptr) err = FromOrt(g_ort->GetDimensionsCount(info, &rank), "output shape");
  if (err == nullptr) {
    dims.assign(rank, 0);
    err = FromOrt(g_ort->GetDimensions(info, dims.data(), rank), "output shape");
  }
  g_ort->ReleaseTensorTypeAndShapeInfo(info);
  RETURN_IF_ERROR(err);
  std::vector<int64_t> expected{total};
  expected.insert(expected.end(), model.item_output_dims.begin(), model.item_output_dims.end());
  const std::string what = "output '" + model.output_name + "' ";
  if (type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
    return Error(TRITONSERVER_ERROR_INTERNAL,
                 what + "came back " + OnnxTypeName(type) + ", config.pbtxt declares TYPE_FP32");
  }
  if (dims != expected) {
    return Error(TRITONSERVER_ERROR_INTERNAL,
                 what + "came back " + DimsText(dims) + ", config.pbtxt implies " + DimsText(expected));
  }
  void* raw = nullptr;
  RETURN_IF_ERROR(FromOrt(g_ort->GetTensorMutableData(output->value, &raw), "output data"));
  output->data = static_cast<const char*>(raw);
  output->bytes = static_cast<size_t>(ElementCount(dims)) * sizeof(float);
  return nullptr;
}

//! Where the batch's input is for ONNX Runtime: one request's buffer in place (host memory, or GPU memory
//! on a CUDA instance), else the buffers stacked on the device (a CUDA instance) or in host memory (copied
//! from the GPU where they are there).
TRITONSERVER_Error* StackBatch(InstanceState* instance, const std::vector<Slice*>& group, size_t buffers,
                               size_t bytes, const void** data, const OrtMemoryInfo** location) {
  bool any_on_gpu = false;
  for (const Slice* slice : group) {
    for (const Piece& piece : slice->buffers) any_on_gpu = any_on_gpu || piece.on_gpu;
  }
  const Piece& first = group.front()->buffers.front();
  const bool runs_here = instance->place.cuda && first.device == instance->place.device_id;
  if (buffers == 1 && (!first.on_gpu || runs_here)) {
    *data = first.data;  // Triton's buffer, used in place
    *location = first.on_gpu ? instance->device_memory : g_cpu;
    return nullptr;
  }
  // A CUDA instance stacks the batch on the device, each request's bytes copied there once (no host copy
  // per request); its provider has the CUDA runtime in the process. A CPU instance stacks in host memory.
  std::string why;
  const cuda::Runtime* runtime = any_on_gpu || instance->place.cuda ? cuda::Runtime::Get(&why) : nullptr;
  if (any_on_gpu && runtime == nullptr) return Error(TRITONSERVER_ERROR_INTERNAL, why);  // ReadSlice checked it
  char* cursor = nullptr;
  const bool on_device = instance->place.cuda && runtime != nullptr;
  if (on_device) {
    // The instance's GPU for this thread's copies and their synchronisation (a peer GPU's bytes included).
    why = runtime->UseDevice(instance->place.device_id);
    if (!why.empty()) return Error(TRITONSERVER_ERROR_INTERNAL, "stacking the batch: " + why);
    if (instance->device_staging_bytes < bytes) {
      runtime->Release(instance->device_staging);
      instance->device_staging = nullptr;
      instance->device_staging_bytes = 0;
      why = runtime->Allocate(instance->place.device_id, &instance->device_staging, bytes);
      if (!why.empty()) return Error(TRITONSERVER_ERROR_INTERNAL, "a device buffer for the batch: " + why);
      instance->device_staging_bytes = bytes;
    }
    cursor = static_cast<char*>(instance->device_staging);
    *location = instance->device_memory;
  } else {
    instance->staging.resize(bytes);
    cursor = instance->staging.data();
    *location = g_cpu;
  }
  *data = cursor;
  for (const Slice* slice : group) {
    for (const Piece& piece : slice->buffers) {  // sizes sum to `bytes` (ReadSlice)
      if (piece.on_gpu || on_device) {  // a copy that involves the GPU: `runtime` is loaded
        why = runtime->Copy(cursor, piece.data, piece.size);
        if (!why.empty()) return Error(TRITONSERVER_ERROR_INTERNAL, "stacking the batch: " + why);
      } else {
        std::memcpy(cursor, piece.data, piece.size);
      }
      cursor += piece.size;
    }
  }
  if (runtime != nullptr) {
    why = runtime->Synchronize();
    if (!why.empty()) return Error(TRITONSERVER_ERROR_INTERNAL, "stacking the batch: " + why);
  }
  return nullptr;
}

//! Run `group` as one batch; on success `output` holds its rows in request order, checked.
TRITONSERVER_Error* RunBatch(InstanceState* instance, const std::vector<Slice*>& group, int64_t item_bytes,
                             BatchOutput* output) {
  const ModelState& model = *instance->model;
  int64_t total = 0;
  size_t buffers = 0;
  for (const Slice* slice : group) {
    total += slice->items;
    buffers += slice->buffers.size();
  }
  const void* data = nullptr;
  const OrtMemoryInfo* location = g_cpu;
  RETURN_IF_ERROR(StackBatch(instance, group, buffers, static_cast<size_t>(total * item_bytes), &data, &location));
  std::vector<int64_t> shape{total};
  shape.insert(shape.end(), model.item_input_dims.begin(), model.item_input_dims.end());
  OrtValue* input = nullptr;
  RETURN_IF_ERROR(FromOrt(g_ort->CreateTensorWithDataAsOrtValue(location, const_cast<void*>(data),
                                                                 static_cast<size_t>(total * item_bytes), shape.data(),
                                                                 shape.size(), model.input_type.onnx, &input),
                          "wrapping the input"));
  const char* input_names[] = {model.input_name.c_str()};
  const char* output_names[] = {model.output_name.c_str()};
  TRITONSERVER_Error* err = FromOrt(
      g_ort->Run(instance->session, nullptr, input_names, &input, 1, output_names, 1, &output->value), "inference");
  g_ort->ReleaseValue(input);
  RETURN_IF_ERROR(err);
  return CheckOutput(model, total, output);
}

//! Answer one request with its rows of the batch output or with `error` (which stays the caller's).
TRITONSERVER_Error* Respond(const ModelState& model, const Slice& slice, TRITONSERVER_Error* error, bool* ok) {
  *ok = false;
  TRITONBACKEND_Response* response = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ResponseNew(&response, slice.request));
  if (error != nullptr) return TRITONBACKEND_ResponseSend(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, error);

  std::vector<int64_t> shape{slice.items};
  shape.insert(shape.end(), model.item_output_dims.begin(), model.item_output_dims.end());
  const size_t bytes = static_cast<size_t>(ElementCount(shape)) * sizeof(float);
  TRITONBACKEND_Output* output = nullptr;
  void* buffer = nullptr;
  TRITONSERVER_MemoryType memory = TRITONSERVER_MEMORY_CPU;
  int64_t memory_id = 0;
  TRITONSERVER_Error* failed = nullptr;
  if (slice.rows_bytes != bytes) {
    failed = Error(TRITONSERVER_ERROR_INTERNAL, "the batch holds " + std::to_string(slice.rows_bytes) +
                                                    " bytes for this request's output, its buffer " +
                                                    std::to_string(bytes));
  }
  if (failed == nullptr) {
    failed = TRITONBACKEND_ResponseOutput(response, &output, model.output_name.c_str(), TRITONSERVER_TYPE_FP32,
                                          shape.data(), static_cast<uint32_t>(shape.size()));
  }
  if (failed == nullptr) failed = TRITONBACKEND_OutputBuffer(output, &buffer, bytes, &memory, &memory_id);
  if (failed == nullptr && memory == TRITONSERVER_MEMORY_GPU) {
    failed = Error(TRITONSERVER_ERROR_UNSUPPORTED, "output wanted in GPU memory: this backend writes responses to host memory");
  }
  if (failed == nullptr) std::memcpy(buffer, slice.rows, bytes);
  TRITONSERVER_Error* sent = TRITONBACKEND_ResponseSend(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, failed);
  *ok = failed == nullptr && sent == nullptr;
  if (failed != nullptr) TRITONSERVER_ErrorDelete(failed);
  return sent;
}

void LogIfError(TRITONSERVER_Error* err, const std::string& what) {
  if (err == nullptr) return;
  Log(TRITONSERVER_LOG_ERROR, "deploylab_ort: " + what + ": " + TRITONSERVER_ErrorMessage(err));
  TRITONSERVER_ErrorDelete(err);
}

//! One ONNX Runtime run that answered its requests, for Triton's batch statistics.
struct ExecutedBatch {
  int64_t items = 0;
  uint64_t compute_start = 0;
  uint64_t compute_end = 0;
};

//! Run `group` as one batch and point each request at its rows of the output, which `outputs` keeps
//! until the responses are sent; when the run fails, return why and leave the requests as they are.
TRITONSERVER_Error* RunGroup(InstanceState* instance, const std::vector<Slice*>& group, int64_t item_bytes,
                             std::vector<std::unique_ptr<BatchOutput>>* outputs,
                             std::vector<ExecutedBatch>* executed) {
  ExecutedBatch batch;
  batch.compute_start = NowNs();
  auto output = std::make_unique<BatchOutput>();
  RETURN_IF_ERROR(RunBatch(instance, group, item_bytes, output.get()));
  batch.compute_end = NowNs();
  const size_t row_bytes = static_cast<size_t>(ElementCount(instance->model->item_output_dims)) * sizeof(float);
  size_t offset = 0;
  for (Slice* slice : group) {
    const size_t wanted = static_cast<size_t>(slice->items) * row_bytes;
    slice->rows = output->data + offset;
    slice->rows_bytes = offset < output->bytes ? std::min(wanted, output->bytes - offset) : 0;  // Respond checks
    offset += wanted;
    batch.items += slice->items;
  }
  outputs->push_back(std::move(output));
  executed->push_back(batch);
  return nullptr;
}

}  // namespace

// Built with -fvisibility=hidden: only Triton's entry points leave the library.
#define BACKEND_EXPORT __attribute__((visibility("default")))

extern "C" {

BACKEND_EXPORT TRITONSERVER_Error* TRITONBACKEND_Initialize(TRITONBACKEND_Backend*) {
  uint32_t major = 0;
  uint32_t minor = 0;
  RETURN_IF_ERROR(TRITONBACKEND_ApiVersion(&major, &minor));
  if (major != TRITONBACKEND_API_VERSION_MAJOR) {
    return Error(TRITONSERVER_ERROR_UNSUPPORTED, "built for backend API 1.x, this Triton has " +
                                                     std::to_string(major) + "." + std::to_string(minor));
  }
  const OrtApi* table = OrtGetApiBase()->GetApi(ort::kApiVersion);
  if (table == nullptr) {
    return Error(TRITONSERVER_ERROR_UNSUPPORTED,
                 std::string("ONNX Runtime ") + OrtGetApiBase()->GetVersionString() + " is older than 1.16");
  }
  g_ort = std::make_unique<ort::Api>(table);
  RETURN_IF_ERROR(FromOrt(g_ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "deploylab_ort", &g_env), "environment"));
  // CreateMemoryInfo, not its CPU shorthand: the CUDA instances' GPU inputs use it too, so every CPU host
  // runs this entry of the API table.
  RETURN_IF_ERROR(FromOrt(g_ort->CreateMemoryInfo("Cpu", OrtDeviceAllocator, 0, OrtMemTypeDefault, &g_cpu),
                          "memory info"));
  Log(TRITONSERVER_LOG_INFO, std::string("deploylab_ort: ONNX Runtime ") + OrtGetApiBase()->GetVersionString());
  return nullptr;
}

BACKEND_EXPORT TRITONSERVER_Error* TRITONBACKEND_Finalize(TRITONBACKEND_Backend*) {
  if (g_cpu != nullptr) g_ort->ReleaseMemoryInfo(g_cpu);
  if (g_env != nullptr) g_ort->ReleaseEnv(g_env);
  g_cpu = nullptr;
  g_env = nullptr;
  return nullptr;
}

BACKEND_EXPORT TRITONSERVER_Error* TRITONBACKEND_ModelInitialize(TRITONBACKEND_Model* model) {
  auto state = std::make_unique<ModelState>();
  RETURN_IF_ERROR(ReadModelState(model, state.get()));
  RETURN_IF_ERROR(TRITONBACKEND_ModelSetState(model, state.get()));
  state.release();
  return nullptr;
}

BACKEND_EXPORT TRITONSERVER_Error* TRITONBACKEND_ModelFinalize(TRITONBACKEND_Model* model) {
  void* state = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelState(model, &state));
  delete static_cast<ModelState*>(state);
  return nullptr;
}

BACKEND_EXPORT TRITONSERVER_Error* TRITONBACKEND_ModelInstanceInitialize(TRITONBACKEND_ModelInstance* instance) {
  TRITONBACKEND_Model* model = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceModel(instance, &model));
  void* model_state = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelState(model, &model_state));
  auto state = std::make_unique<InstanceState>();
  state->model = static_cast<ModelState*>(model_state);
  const char* name = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceName(instance, &name));
  state->name = name;
  Placement& place = state->place;
  RETURN_IF_ERROR(PlaceInstance(instance, *state->model, &place));
  RETURN_IF_ERROR(CreateSession(*state->model, place, &state->session));
  if (place.cuda) {
    RETURN_IF_ERROR(FromOrt(g_ort->CreateMemoryInfo("Cuda", OrtDeviceAllocator, place.device_id, OrtMemTypeDefault,
                                                    &state->device_memory),
                            "GPU memory info"));
  }
  RETURN_IF_ERROR(CheckSession(*state->model, state->session));
  Log(TRITONSERVER_LOG_INFO, "deploylab_ort: " + state->name + " intra_op=" +
                                 std::to_string(state->model->intra_op_threads) +
                                 " inter_op=" + std::to_string(state->model->inter_op_threads) + " provider=" +
                                 (place.cuda ? std::string(place.tensorrt ? "tensorrt+cuda:" : "cuda:") +
                                                   std::to_string(place.device_id)
                                             : std::string("cpu")));
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceSetState(instance, state.get()));
  state.release();
  return nullptr;
}

BACKEND_EXPORT TRITONSERVER_Error* TRITONBACKEND_ModelInstanceFinalize(TRITONBACKEND_ModelInstance* instance) {
  void* raw = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceState(instance, &raw));
  auto* state = static_cast<InstanceState*>(raw);
  delete state;  // nullptr when its initialization failed before setting one
  return nullptr;
}

BACKEND_EXPORT TRITONSERVER_Error* TRITONBACKEND_ModelInstanceExecute(TRITONBACKEND_ModelInstance* triton_instance,
                                                                     TRITONBACKEND_Request** requests,
                                                                     const uint32_t count) {
  const uint64_t exec_start = NowNs();
  void* raw = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceState(triton_instance, &raw));  // before owning any request
  auto* instance = static_cast<InstanceState*>(raw);
  const ModelState& model = *instance->model;
  const int64_t item_bytes = ElementCount(model.item_input_dims) * model.input_type.bytes;

  // From here every request is ours: each gets exactly one response and is released.
  std::vector<Slice> slices(count);
  std::vector<Slice*> group;  // the requests that make up the batch
  for (uint32_t index = 0; index < count; ++index) {
    slices[index].request = requests[index];
    slices[index].error = ReadSlice(model, item_bytes, &slices[index]);
    if (slices[index].error == nullptr) group.push_back(&slices[index]);
  }

  // A failed run that is the model's or the runtime's fault goes to the server log; a request's own
  // fault (INVALID_ARG) only to its client.
  auto log_run_error = [&model](TRITONSERVER_Error* err) {
    if (err != nullptr && TRITONSERVER_ErrorCode(err) != TRITONSERVER_ERROR_INVALID_ARG) {
      Log(TRITONSERVER_LOG_ERROR, std::string(TRITONSERVER_ErrorMessage(err)) + " (model " + model.name + ")");
    }
  };
  const uint64_t compute_start = NowNs();
  std::vector<std::unique_ptr<BatchOutput>> outputs;
  std::vector<ExecutedBatch> executed;
  TRITONSERVER_Error* run_error =
      group.empty() ? nullptr : RunGroup(instance, group, item_bytes, &outputs, &executed);
  if (run_error != nullptr && group.size() > 1 && TRITONSERVER_ErrorCode(run_error) == TRITONSERVER_ERROR_INVALID_ARG) {
    // One request's values can fail the whole batch (an index out of range, say): each request then
    // runs alone, so that only the one at fault is answered with the error.
    for (Slice* slice : group) {
      slice->error = RunGroup(instance, {slice}, item_bytes, &outputs, &executed);
      log_run_error(slice->error);
    }
  } else if (run_error != nullptr) {
    log_run_error(run_error);
    for (Slice* slice : group) {
      slice->error = TRITONSERVER_ErrorNew(TRITONSERVER_ErrorCode(run_error), TRITONSERVER_ErrorMessage(run_error));
    }
  }
  if (run_error != nullptr) TRITONSERVER_ErrorDelete(run_error);
  const uint64_t compute_end = NowNs();

  for (Slice& slice : slices) {
    LogIfError(Respond(model, slice, slice.error, &slice.ok), model.name + ": sending a response");
    if (slice.error != nullptr) TRITONSERVER_ErrorDelete(slice.error);
    slice.error = nullptr;
  }
  outputs.clear();
  const uint64_t exec_end = NowNs();

  for (Slice& slice : slices) {
    LogIfError(TRITONBACKEND_ModelInstanceReportStatistics(triton_instance, slice.request, slice.ok,
                                                           exec_start, compute_start, compute_end, exec_end),
               model.name + ": statistics");
    LogIfError(TRITONBACKEND_RequestRelease(slice.request, TRITONSERVER_REQUEST_RELEASE_ALL),
               model.name + ": releasing a request");
  }
  for (const ExecutedBatch& batch : executed) {
    LogIfError(TRITONBACKEND_ModelInstanceReportBatchStatistics(triton_instance, static_cast<uint64_t>(batch.items),
                                                                exec_start, batch.compute_start,
                                                                batch.compute_end, exec_end),
               model.name + ": batch statistics");
  }
  return nullptr;
}

}  // extern "C"
