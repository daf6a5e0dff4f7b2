"""The course's autograder: `python -m checks STEP` compares a step with HuggingFace GPT-2."""
