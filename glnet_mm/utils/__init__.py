"""torch-version compatibility (:mod:`.compat`), FLOP counting
(:mod:`.flops`, mmengine's counter with GLNet's handles) and the packaged
model index (:mod:`.model_index`)."""
