"""Windows of live traffic: what one window counts (:mod:`.state`) and how traffic is cut
into windows (:mod:`.policies`)."""
