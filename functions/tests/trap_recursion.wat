;; trap_recursion — unbounded recursion. Each frame stores to linear memory
;; before the call and reads memory after it returns, so the recursion is
;; not a tail call and cannot be turned into a loop (accumulator or
;; otherwise) by wasm2c's C compiler. Expected: call-stack-exhaustion trap
;; ("call stack exhausted"), no output.
(module
  (memory (export "memory") 1)
  (func $rec (param $n i32) (result i32)
    (local $addr i32)
    (local.set $addr (i32.and (i32.shl (local.get $n) (i32.const 2))
                              (i32.const 0xfffc)))
    (i32.store (local.get $addr) (local.get $n))
    (i32.xor
      (call $rec (i32.add (local.get $n) (i32.const 1)))
      (i32.load (local.get $addr))))
  (func (export "_start")
    (drop (call $rec (i32.const 0)))))
