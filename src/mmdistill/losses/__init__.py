"""Loss functions shared by distillation, expert training, the DAVDD bank and evaluation (one copy each):
:mod:`.contrastive` holds the contrastive logits, symmetric InfoNCE and the soft-target losses."""
