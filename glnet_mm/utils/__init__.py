"""torch-version compatibility (:mod:`.compat`) and FLOP counting
(:mod:`.flops`, mmengine's counter with GLNet's handles)."""
