"""Generated plans: hypothesis strategies for valid plans (:mod:`.plans`), the contract every plan
``drplan validate`` accepts must keep (:mod:`.contract`), and minimised plans that broke it
(``found/``). Used by tests/test_generated_plans.py."""
