// The part of the CUDA runtime that deploylab_ort.cc calls, opened when a request first brings a tensor in
// GPU memory (a client on the same host using Triton's CUDA shared memory).
//
// Why dlopen and not a link: CPU hosts have no CUDA, and the backend is one build for both. On a GPU host
// the runtime is already in tritonserver's process whenever an instance runs on ONNX Runtime's CUDA
// provider (the provider links it), so the library is taken from the process first (RTLD_NOLOAD), by
// the sonames of the CUDA majors the onnxruntime-gpu wheels use, and only then looked up on the library
// path. The signatures are cudart's (cuda_runtime_api.h); only the copy kind that lets the runtime
// tell host from device by the pointers (unified addressing, every 64-bit CUDA platform) is used.
#pragma once

#include <dlfcn.h>

#include <cstddef>
#include <mutex>
#include <string>

namespace cuda {

class Runtime {
 public:
  //! The runtime, loaded once per process; nullptr when it cannot be, with the reason in `why`.
  static const Runtime* Get(std::string* why) {
    static Runtime runtime;
    static std::once_flag loaded;
    std::call_once(loaded, [] { runtime.Load(); });
    if (runtime.handle_ == nullptr) *why = runtime.why_;
    return runtime.handle_ == nullptr ? nullptr : &runtime;
  }

  //! Copies `bytes` between any two of host and device memory (cudaMemcpyDefault); "" or the error.
  std::string Copy(void* to, const void* from, size_t bytes) const { return Check(memcpy_(to, from, bytes, 4)); }
  //! Waits for the copies on the default stream: ONNX Runtime's CUDA provider runs on a stream of its own.
  std::string Synchronize() const { return Check(stream_synchronize_(nullptr)); }
  //! Makes `device` the calling thread's current GPU (where Allocate allocates).
  std::string UseDevice(int device) const { return Check(set_device_(device)); }
  std::string Allocate(int device, void** pointer, size_t bytes) const {
    std::string err = UseDevice(device);
    return err.empty() ? Check(malloc_(pointer, bytes)) : err;
  }
  void Release(void* pointer) const {
    if (pointer != nullptr) free_(pointer);
  }

 private:
  using Memcpy = int (*)(void*, const void*, size_t, int);
  using StreamSynchronize = int (*)(void*);
  using SetDevice = int (*)(int);
  using Malloc = int (*)(void**, size_t);
  using Free = int (*)(void*);
  using ErrorString = const char* (*)(int);

  void Load() {
    static const char* const kNames[] = {"libcudart.so.13", "libcudart.so.12", "libcudart.so"};
    for (int flags : {RTLD_NOW | RTLD_NOLOAD, RTLD_NOW}) {
      for (const char* name : kNames) {
        if ((handle_ = dlopen(name, flags)) != nullptr) break;
      }
      if (handle_ != nullptr) break;
    }
    if (handle_ == nullptr) {
      why_ = "no CUDA runtime (libcudart.so.13 or .12) in the process or on the library path";
      return;
    }
    memcpy_ = reinterpret_cast<Memcpy>(dlsym(handle_, "cudaMemcpy"));
    stream_synchronize_ = reinterpret_cast<StreamSynchronize>(dlsym(handle_, "cudaStreamSynchronize"));
    set_device_ = reinterpret_cast<SetDevice>(dlsym(handle_, "cudaSetDevice"));
    malloc_ = reinterpret_cast<Malloc>(dlsym(handle_, "cudaMalloc"));
    free_ = reinterpret_cast<Free>(dlsym(handle_, "cudaFree"));
    error_string_ = reinterpret_cast<ErrorString>(dlsym(handle_, "cudaGetErrorString"));
    if (!memcpy_ || !stream_synchronize_ || !set_device_ || !malloc_ || !free_ || !error_string_) {
      why_ = "the CUDA runtime found lacks cudaMemcpy, cudaMalloc or their kin";
      handle_ = nullptr;
    }
  }
  std::string Check(int code) const { return code == 0 ? std::string() : std::string("CUDA: ") + error_string_(code); }

  void* handle_ = nullptr;
  std::string why_;
  Memcpy memcpy_ = nullptr;
  StreamSynchronize stream_synchronize_ = nullptr;
  SetDevice set_device_ = nullptr;
  Malloc malloc_ = nullptr;
  Free free_ = nullptr;
  ErrorString error_string_ = nullptr;
};

}  // namespace cuda
