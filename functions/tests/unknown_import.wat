;; unknown_import — imports `env.foo`, which no WASI host provides, next to
;; a legitimate `wasi_snapshot_preview1.fd_write`. Expected: the module is
;; refused at compile/load time with an error naming env.foo; _start must
;; never run.
(module
  (import "env" "foo" (func $foo (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $foo (i32.const 42)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8)))))
