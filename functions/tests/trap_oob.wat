;; trap_oob — loads an i32 from address 0xFFFFFFF0 of a 1-page (64 KiB)
;; memory. Expected: "out of bounds memory access" trap, no output.
;; The address comes from memory (not a constant) so no compiler can prove
;; anything about it ahead of time.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\f0\ff\ff\ff")
  (func (export "_start")
    (drop (i32.load (i32.load (i32.const 0))))))
