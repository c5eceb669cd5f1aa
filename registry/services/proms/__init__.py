"""Patient-reported outcomes: instruments (`instruments`), answers and scores on read
(`answers`), SQL of the scores for the datasets (`sql`)."""
