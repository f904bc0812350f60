"""Chat with long-term memory through any OpenAI-compatible endpoint.

    OPENAI_API_KEY=sk-... python examples/chat_with_memory.py
    OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_API_KEY=ollama MODEL=llama3.2 python examples/chat_with_memory.py
"""

import os

from openai import OpenAI

from memory_mcp import with_memory

client = with_memory(OpenAI(), user_id="alice")  # the one line
model = os.environ.get("MODEL", "gpt-4o-mini")

for text in ["I prefer Python for backend work.", "What language should I use for my new API?"]:
    response = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    print(f"> {text}\n{response.choices[0].message.content}\n")

print("Remembered:")
for memory in client.memory.get_all():
    print(f"  [{memory.category.value}] {memory.content}")
