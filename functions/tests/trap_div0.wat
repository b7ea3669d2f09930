;; trap_div0 — i32.div_s of 1 by a divisor loaded from linear memory at
;; run time (it is 0). Expected: "integer divide by zero" trap, no output.
(module
  (memory (export "memory") 1)
  (global $sink (mut i32) (i32.const 0))
  (func (export "_start")
    ;; memory[0..4) is zero-initialized.
    (global.set $sink (i32.div_s (i32.const 1) (i32.load (i32.const 0))))))
