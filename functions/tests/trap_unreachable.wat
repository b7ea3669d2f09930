;; trap_unreachable — writes "before trap\n" to stderr (fd 2), then executes
;; `unreachable`. Expected: the call fails with an "unreachable" trap; the
;; stderr line written before the trap should still reach the log; stdout is
;; empty.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: {buf = 16, len = 12}; message at 16.
  (data (i32.const 0) "\10\00\00\00\0c\00\00\00")
  (data (i32.const 16) "before trap\n")
  (func (export "_start")
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    unreachable))
