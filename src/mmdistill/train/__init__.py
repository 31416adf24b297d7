"""Training loops shared by evaluation, expert and teacher training, the coreset proxy and the DAVDD bank."""
