"""The write phase's parts: the writer's prompts, the pure decision, proposals, heuristics, router learning."""
