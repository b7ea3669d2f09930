;; loop_forever — spins forever without calling the host, incrementing a
;; counter in linear memory on every iteration (so the loop has an effect
;; and is not removable). Expected: only a timeout / interruption ends it.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $spin
      (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
      (br $spin))))
