{
  "targets": [
    {
      "target_name": "forkwise",
      "conditions": [["OS!='win'", {
        "sources": [
          "native/addon.cc",
          "native/child_loop_end.cc",
          "native/errors.cc",
          "native/fork.cc",
          "native/heap_gc.cc",
          "native/heap_layout.cc",
          "native/heap_regions.cc",
          "native/loop_fork.cc",
          "native/platform_park.cc",
          "native/exec.cc",
          "native/spawn.cc",
          "native/system.cc",
          "native/wait.cc",
          "native/fd.cc",
          "native/fd_passing.cc",
          "native/socket_connect.cc",
          "native/process.cc",
          "native/signal.cc",
          "native/shm.cc",
          "native/sync.cc",
          "native/futex.cc",
          "native/futex_poll.cc",
          "native/serialize.cc"
        ]
      }]],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      # Symbols bound at load: a forked child would otherwise resolve (and copy the GOT pages
      # of) every function that only children call, such as _exit, once per child.
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
