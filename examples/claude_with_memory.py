"""Chat with long-term memory through Anthropic's Messages API, the answer streamed as it comes.

    ANTHROPIC_API_KEY=sk-ant-... python examples/claude_with_memory.py
"""

import os

from anthropic import Anthropic

from memory_mcp import with_memory

client = with_memory(Anthropic(), user_id="alice")  # the one line
model = os.environ.get("MODEL", "claude-sonnet-4-5")

for text in ["I prefer Python for backend work.", "What language should I use for my new API?"]:
    print(f"> {text}")
    with client.messages.stream(model=model, max_tokens=1024, messages=[{"role": "user", "content": text}]) as stream:
        for piece in stream.text_stream:
            print(piece, end="", flush=True)
    print("\n")

print("Remembered:")
for memory in client.memory.get_all():
    print(f"  [{memory.category.value}] {memory.content}")
