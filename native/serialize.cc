// V8's structured clone called directly, for src/messaging/serializer.ts: the same bytes as
// node:v8's DefaultSerializer / DefaultDeserializer (same V8, same header, same tags), at a
// fraction of their cost for small values. Those are JavaScript classes over a C++ object
// made per message; constructing one and the calls through it cost more than the clone
// itself (v8.serialize({ i }) took 3.6 µs here, this path well under 1 µs).
//
// - serializeInto(value, flag, scratch): writes `flag` (one byte), the header and `value`
//   into `scratch` (a Uint8Array the caller keeps and reuses: V8 writes straight into it,
//   no copy). Returns the length written, a new Buffer when the value outgrew `scratch`, or
//   undefined when the value needs node:v8's serializer: a typed array or DataView (Node
//   writes those as host objects of its own), a SharedArrayBuffer, or anything structured
//   clone refuses (the JavaScript path then throws the proper error).
// - deserializeFrom(bytes, offset, sentinel): the value in `bytes` from `offset` on (a
//   Uint8Array: header, value; the flag before `offset`), or `sentinel` when it holds a host
//   object or is malformed (the JavaScript path then reads it, or throws the proper error).
//
// Every message pays these calls (about a microsecond each way), so each typed array is read
// with one napi_get_typedarray_info (node-addon-api's accessors make one call per property)
// and the offset spares the caller a subarray per message.
//
// node-addon-api has no structured clone: a napi_value is, in Node, the address of a V8
// handle (the same bits as a v8::Local), which is how Node's own N-API converts them.
#include <node.h>
#include <v8.h>

#include <cstdlib>
#include <cstring>

#include "common.h"

namespace forkwise {
namespace {

static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>), "napi_value is a V8 handle");

v8::Local<v8::Value> V8Value(napi_value value) {
  v8::Local<v8::Value> local;
  std::memcpy(static_cast<void*>(&local), &value, sizeof value);
  return local;
}

napi_value NapiValue(v8::Local<v8::Value> local) {
  napi_value value;
  std::memcpy(&value, static_cast<void*>(&local), sizeof value);
  return value;
}

// The bytes of a Uint8Array, or nullptr when `value` is not one (napi_invalid_arg).
uint8_t* Uint8Bytes(napi_env env, napi_value value, size_t* length) {
  napi_typedarray_type type;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, value, &type, length, &data, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
    return nullptr;
  }
  // An empty view may have no memory at all.
  static uint8_t empty;
  return data != nullptr ? static_cast<uint8_t*>(data) : &empty;
}

// Hands V8 the caller's scratch memory first, heap memory only beyond it. Whatever V8
// cannot write by itself makes the whole value go to node:v8 (`fallback`).
class ScratchDelegate : public v8::ValueSerializer::Delegate {
 public:
  ScratchDelegate(v8::Isolate* isolate, uint8_t* scratch, size_t size)
      : isolate_(isolate), scratch_(scratch), size_(size) {}

  void ThrowDataCloneError(v8::Local<v8::String> message) override {
    isolate_->ThrowException(v8::Exception::Error(message));
  }

  v8::Maybe<bool> WriteHostObject(v8::Isolate* isolate, v8::Local<v8::Object> object) override {
    isolate->ThrowException(v8::Exception::Error(v8::String::Empty(isolate)));
    return v8::Nothing<bool>();
  }

  void* ReallocateBufferMemory(void* old, size_t size, size_t* actual) override {
    if ((old == nullptr || old == scratch_) && size <= size_) {
      *actual = size_;
      return scratch_;
    }
    if (old == scratch_) {
      void* grown = std::malloc(size);
      if (grown == nullptr) return nullptr;
      std::memcpy(grown, scratch_, size_);
      *actual = size;
      return grown;
    }
    void* grown = std::realloc(old, size);
    if (grown != nullptr) *actual = size;
    return grown;
  }

  void FreeBufferMemory(void* buffer) override {
    if (buffer != scratch_) std::free(buffer);
  }

  uint8_t* scratch() const { return scratch_; }

 private:
  v8::Isolate* isolate_;
  uint8_t* scratch_;
  size_t size_;
};

Napi::Value SerializeInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t size = 0;
  uint8_t* data = info.Length() < 3 ? nullptr : Uint8Bytes(env, info[2], &size);
  if (data == nullptr || !info[1].IsNumber() || size < 16) {
    throw Napi::TypeError::New(env, "forkwise native: expected (value, flag, Uint8Array of 16 bytes or more)");
  }
  uint8_t flag = static_cast<uint8_t>(info[1].As<Napi::Number>().Uint32Value());

  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  v8::TryCatch failed(isolate);
  ScratchDelegate delegate(isolate, data, size);
  v8::ValueSerializer serializer(isolate, &delegate);
  serializer.SetTreatArrayBufferViewsAsHostObjects(true);  // as node:v8 does
  serializer.WriteRawBytes(&flag, 1);
  serializer.WriteHeader();
  bool written = serializer.WriteValue(context, V8Value(info[0])).FromMaybe(false);
  std::pair<uint8_t*, size_t> out = serializer.Release();
  if (!written || failed.HasCaught() || out.first == nullptr) {
    delegate.FreeBufferMemory(out.first);
    return env.Undefined();
  }
  if (out.first == delegate.scratch()) return Napi::Number::New(env, static_cast<double>(out.second));
  return Napi::Buffer<uint8_t>::New(env, out.first, out.second, [](Napi::Env, uint8_t* bytes) { std::free(bytes); });
}

Napi::Value DeserializeFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t length = 0;
  const uint8_t* data = info.Length() < 3 ? nullptr : Uint8Bytes(env, info[0], &length);
  if (data == nullptr || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "forkwise native: expected (Uint8Array, offset, sentinel)");
  }
  double offset = info[1].As<Napi::Number>().DoubleValue();
  if (!(offset >= 0 && offset <= static_cast<double>(length))) {
    throw Napi::RangeError::New(env, "forkwise native: offset out of range");
  }
  auto skip = static_cast<size_t>(offset);

  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  v8::EscapableHandleScope scope(isolate);
  v8::TryCatch failed(isolate);
  // No delegate: a host object (a typed array written by node:v8) throws, and falls back.
  v8::ValueDeserializer deserializer(isolate, data + skip, length - skip);
  v8::Local<v8::Value> value;
  if (!deserializer.ReadHeader(context).FromMaybe(false) || !deserializer.ReadValue(context).ToLocal(&value) ||
      failed.HasCaught()) {
    return info[2];
  }
  return Napi::Value(env, NapiValue(scope.Escape(value)));
}

}  // namespace

void InitSerialize(Napi::Env env, Napi::Object exports) {
  exports["serializeInto"] = Napi::Function::New(env, SerializeInto, "serializeInto");
  exports["deserializeFrom"] = Napi::Function::New(env, DeserializeFrom, "deserializeFrom");
}

}  // namespace forkwise
