// deploylab_ort: a Triton backend that runs an exported model.onnx with ONNX Runtime inside tritonserver.
//
// Why it exists: Triton's own onnxruntime backend ships only in NVIDIA's container images, and the
// Python backend (model.py) pays for a stub process per instance: requests cross into it over shared
// memory and responses come back the same way, about 5 % of two cores at saturation for
// mobilenet_v3_large (docs/benchmarks.md). Here a batch is ONNX Runtime's input without leaving the
// server: one request's tensor is used in place, several are copied once into a reused buffer.
//
// Scope, kept small on purpose: CPU instances, one FP32 input and one FP32 output whose first axis is
// the batch, the parameters deploylab writes (`intra_op_thread_count`, `inter_op_thread_count`,
// `allow_spinning`). Anything else is refused at load with a message that says so.
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

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

//! An ONNX Runtime status as a Triton error (nullptr stays nullptr); releases the status.
TRITONSERVER_Error* FromOrt(OrtStatus* status, const std::string& what) {
  if (status == nullptr) return nullptr;
  std::string message = what + ": " + g_ort->GetErrorMessage(status);
  g_ort->ReleaseStatus(status);
  return Error(TRITONSERVER_ERROR_INTERNAL, message);
}

#define RETURN_IF_ERROR(expr)                   \
  do {                                          \
    TRITONSERVER_Error* rie_err__ = (expr);     \
    if (rie_err__ != nullptr) return rie_err__; \
  } while (false)

int64_t ElementCount(const std::vector<int64_t>& dims) {
  return std::accumulate(dims.begin(), dims.end(), int64_t{1}, std::multiplies<int64_t>());
}

//! What the model's config.pbtxt says, read once per model load.
struct ModelState {
  std::string name;
  std::string onnx_path;
  int64_t max_batch_size = 0;
  std::string input_name;
  std::string output_name;
  std::vector<int64_t> item_input_dims;   // one batch item, without the batch axis
  std::vector<int64_t> item_output_dims;  // idem
  int intra_op_threads = 1;
  int inter_op_threads = 1;
  std::string allow_spinning;  // "", "0" or "1"
};

struct InstanceState {
  ModelState* model = nullptr;
  std::string name;
  OrtSession* session = nullptr;  // one per instance: one copy of the weights each, no more
  std::vector<char> staging;      // the batch, when more than one buffer makes it up
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
    for (const json* tensor : {&inputs[0], &outputs[0]}) {
      if (tensor->value("data_type", "") != "TYPE_FP32") {
        return Error(TRITONSERVER_ERROR_UNSUPPORTED, "serves TYPE_FP32 tensors only");
      }
    }
    state->input_name = inputs[0].at("name").get<std::string>();
    state->output_name = outputs[0].at("name").get<std::string>();
    RETURN_IF_ERROR(ItemDims(inputs[0], state->max_batch_size, &state->item_input_dims));
    RETURN_IF_ERROR(ItemDims(outputs[0], state->max_batch_size, &state->item_output_dims));
    std::string intra = Parameter(config, "intra_op_thread_count");
    std::string inter = Parameter(config, "inter_op_thread_count");
    state->intra_op_threads = intra.empty() ? 1 : std::stoi(intra);
    state->inter_op_threads = inter.empty() ? 1 : std::stoi(inter);
    state->allow_spinning = Parameter(config, "allow_spinning");
  } catch (const std::exception& exc) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, std::string("unexpected model config: ") + exc.what());
  }
  if (state->intra_op_threads < 0 || state->inter_op_threads < 0) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, "thread counts must be >= 0 (0 lets ONNX Runtime decide)");
  }
  if (!state->allow_spinning.empty() && state->allow_spinning != "0" && state->allow_spinning != "1") {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, "allow_spinning must be \"0\" or \"1\"");
  }
  return nullptr;
}

TRITONSERVER_Error* CreateSession(const ModelState& model, OrtSession** session) {
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
  return FromOrt(g_ort->CreateSession(g_env, model.onnx_path.c_str(), options, session),
                 "loading " + model.onnx_path);
}

//! One request's share of the batch: where its input bytes are, how many items, or why it failed.
struct Slice {
  TRITONBACKEND_Request* request = nullptr;
  int64_t items = 0;
  std::vector<std::pair<const void*, size_t>> buffers;
  TRITONSERVER_Error* error = nullptr;  // owned until the response is sent
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
  if (datatype != TRITONSERVER_TYPE_FP32 || dims != model.item_input_dims.size() + 1) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, "input must be FP32 [batch, " +
                                                     std::to_string(model.item_input_dims.size()) + " dims]");
  }
  slice->items = shape[0];
  if (slice->items < 1 || byte_size != static_cast<uint64_t>(slice->items * item_bytes)) {
    return Error(TRITONSERVER_ERROR_INVALID_ARG, "input byte size does not match its shape");
  }
  for (uint32_t index = 0; index < buffer_count; ++index) {
    const void* buffer = nullptr;
    uint64_t size = 0;
    TRITONSERVER_MemoryType memory = TRITONSERVER_MEMORY_CPU;
    int64_t memory_id = 0;
    RETURN_IF_ERROR(TRITONBACKEND_InputBuffer(input, index, &buffer, &size, &memory, &memory_id));
    if (memory == TRITONSERVER_MEMORY_GPU) {
      return Error(TRITONSERVER_ERROR_UNSUPPORTED, "input in GPU memory: this backend serves CPU instances");
    }
    slice->buffers.emplace_back(buffer, size);
  }
  return nullptr;
}

//! Run the batch; on success `logits` holds total × item_output floats owned by `*output`.
TRITONSERVER_Error* RunBatch(InstanceState* instance, const std::vector<Slice>& slices, int64_t total,
                             int64_t item_bytes, OrtValue** output, const float** logits) {
  const ModelState& model = *instance->model;
  const void* data = nullptr;
  size_t buffers = 0;
  for (const Slice& slice : slices) buffers += slice.error == nullptr ? slice.buffers.size() : 0;
  if (buffers == 1) {
    for (const Slice& slice : slices) {
      if (slice.error == nullptr) data = slice.buffers.front().first;  // Triton's buffer, used in place
    }
  } else {
    instance->staging.resize(static_cast<size_t>(total * item_bytes));
    char* cursor = instance->staging.data();
    for (const Slice& slice : slices) {
      if (slice.error != nullptr) continue;
      for (const auto& [buffer, size] : slice.buffers) {
        std::memcpy(cursor, buffer, size);
        cursor += size;
      }
    }
    data = instance->staging.data();
  }
  std::vector<int64_t> shape{total};
  shape.insert(shape.end(), model.item_input_dims.begin(), model.item_input_dims.end());
  OrtValue* input = nullptr;
  RETURN_IF_ERROR(FromOrt(g_ort->CreateTensorWithDataAsOrtValue(g_cpu, const_cast<void*>(data),
                                                                 static_cast<size_t>(total * item_bytes), shape.data(),
                                                                 shape.size(), ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &input),
                          "wrapping the input"));
  const char* input_names[] = {model.input_name.c_str()};
  const char* output_names[] = {model.output_name.c_str()};
  TRITONSERVER_Error* err = FromOrt(
      g_ort->Run(instance->session, nullptr, input_names, &input, 1, output_names, 1, output), "inference");
  g_ort->ReleaseValue(input);
  RETURN_IF_ERROR(err);

  OrtTensorTypeAndShapeInfo* info = nullptr;
  size_t elements = 0;
  err = FromOrt(g_ort->GetTensorTypeAndShape(*output, &info), "output shape");
  if (err == nullptr) {
    err = FromOrt(g_ort->GetTensorShapeElementCount(info, &elements), "output shape");
    g_ort->ReleaseTensorTypeAndShapeInfo(info);
  }
  if (err == nullptr && static_cast<int64_t>(elements) != total * ElementCount(model.item_output_dims)) {
    err = Error(TRITONSERVER_ERROR_INTERNAL, "the model's output does not match the configured dims");
  }
  void* raw = nullptr;
  if (err == nullptr) err = FromOrt(g_ort->GetTensorMutableData(*output, &raw), "output data");
  *logits = static_cast<const float*>(raw);
  return err;
}

//! Answer one request with its rows of the batch output, or with `error` (which stays the caller's).
TRITONSERVER_Error* Respond(const ModelState& model, const Slice& slice, const float* rows,
                            TRITONSERVER_Error* error, bool* ok) {
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
  TRITONSERVER_Error* failed = TRITONBACKEND_ResponseOutput(
      response, &output, model.output_name.c_str(), TRITONSERVER_TYPE_FP32, shape.data(),
      static_cast<uint32_t>(shape.size()));
  if (failed == nullptr) failed = TRITONBACKEND_OutputBuffer(output, &buffer, bytes, &memory, &memory_id);
  if (failed == nullptr && memory == TRITONSERVER_MEMORY_GPU) {
    failed = Error(TRITONSERVER_ERROR_UNSUPPORTED, "output wanted in GPU memory: this backend serves CPU instances");
  }
  if (failed == nullptr) std::memcpy(buffer, rows, bytes);
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
  RETURN_IF_ERROR(FromOrt(g_ort->CreateCpuMemoryInfo(OrtDeviceAllocator, OrtMemTypeDefault, &g_cpu), "memory info"));
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
  TRITONSERVER_InstanceGroupKind kind;
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceKind(instance, &kind));
  if (kind != TRITONSERVER_INSTANCEGROUPKIND_CPU) {
    return Error(TRITONSERVER_ERROR_UNSUPPORTED,
                 "serves KIND_CPU instances only; use backend python or onnxruntime for GPUs");
  }
  TRITONBACKEND_Model* model = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceModel(instance, &model));
  void* model_state = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelState(model, &model_state));
  auto state = std::make_unique<InstanceState>();
  state->model = static_cast<ModelState*>(model_state);
  const char* name = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceName(instance, &name));
  state->name = name;
  RETURN_IF_ERROR(CreateSession(*state->model, &state->session));
  Log(TRITONSERVER_LOG_INFO, "deploylab_ort: " + state->name + " intra_op=" +
                                 std::to_string(state->model->intra_op_threads) +
                                 " inter_op=" + std::to_string(state->model->inter_op_threads));
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceSetState(instance, state.get()));
  state.release();
  return nullptr;
}

BACKEND_EXPORT TRITONSERVER_Error* TRITONBACKEND_ModelInstanceFinalize(TRITONBACKEND_ModelInstance* instance) {
  void* raw = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceState(instance, &raw));
  auto* state = static_cast<InstanceState*>(raw);
  if (state == nullptr) return nullptr;  // its initialization failed before setting one
  if (state->session != nullptr) g_ort->ReleaseSession(state->session);
  delete state;
  return nullptr;
}

BACKEND_EXPORT TRITONSERVER_Error* TRITONBACKEND_ModelInstanceExecute(TRITONBACKEND_ModelInstance* triton_instance,
                                                       TRITONBACKEND_Request** requests, const uint32_t count) {
  const uint64_t exec_start = NowNs();
  void* raw = nullptr;
  RETURN_IF_ERROR(TRITONBACKEND_ModelInstanceState(triton_instance, &raw));  // before owning any request
  auto* instance = static_cast<InstanceState*>(raw);
  const ModelState& model = *instance->model;
  const int64_t item_bytes = ElementCount(model.item_input_dims) * static_cast<int64_t>(sizeof(float));

  // From here every request is ours: each gets exactly one response and is released.
  std::vector<Slice> slices(count);
  int64_t total = 0;
  for (uint32_t index = 0; index < count; ++index) {
    slices[index].request = requests[index];
    slices[index].error = ReadSlice(model, item_bytes, &slices[index]);
    if (slices[index].error == nullptr) total += slices[index].items;
  }

  const uint64_t compute_start = NowNs();
  OrtValue* output = nullptr;
  const float* logits = nullptr;
  TRITONSERVER_Error* run_error = total > 0 ? RunBatch(instance, slices, total, item_bytes, &output, &logits) : nullptr;
  const uint64_t compute_end = NowNs();

  const int64_t row = ElementCount(model.item_output_dims);
  int64_t offset = 0;
  for (Slice& slice : slices) {
    TRITONSERVER_Error* error = slice.error;
    const float* rows = nullptr;
    if (error == nullptr && run_error != nullptr) {
      error = TRITONSERVER_ErrorNew(TRITONSERVER_ERROR_INTERNAL, TRITONSERVER_ErrorMessage(run_error));
    } else if (error == nullptr) {
      rows = logits + offset * row;
      offset += slice.items;
    }
    LogIfError(Respond(model, slice, rows, error, &slice.ok), model.name + ": sending a response");
    if (error != nullptr) TRITONSERVER_ErrorDelete(error);
    slice.error = nullptr;
  }
  if (output != nullptr) g_ort->ReleaseValue(output);
  const uint64_t exec_end = NowNs();

  for (Slice& slice : slices) {
    LogIfError(TRITONBACKEND_ModelInstanceReportStatistics(triton_instance, slice.request, slice.ok,
                                                           exec_start, compute_start, compute_end, exec_end),
               model.name + ": statistics");
    LogIfError(TRITONBACKEND_RequestRelease(slice.request, TRITONSERVER_REQUEST_RELEASE_ALL),
               model.name + ": releasing a request");
  }
  if (total > 0 && run_error == nullptr) {
    LogIfError(TRITONBACKEND_ModelInstanceReportBatchStatistics(triton_instance, static_cast<uint64_t>(total),
                                                                exec_start, compute_start, compute_end, exec_end),
               model.name + ": batch statistics");
  }
  if (run_error != nullptr) {
    Log(TRITONSERVER_LOG_ERROR, "deploylab_ort: " + model.name + ": " + TRITONSERVER_ErrorMessage(run_error));
    TRITONSERVER_ErrorDelete(run_error);
  }
  return nullptr;
}

}  // extern "C"
