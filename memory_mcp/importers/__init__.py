"""Bringing history in: chat exports (ChatGPT, Claude), other memory stores (server-memory, Mem0)
and memory_mcp's own JSON lines, streamed, dated and keyed by their source ids.

    from memory_mcp.importers import import_file
    report = await import_file(memory, "conversations.json", user_id="me")   # format detected
    print(report.summary())

One module per format reads its records; ``conversations`` stores a conversation message by
message, ``extract`` distils it into facts with a model instead, ``run`` drives an import.
"""

from .detect import FORMATS, detect
from .extract import ExtractionSettings, Extractor, extractor_from
from .report import ImportReport
from .run import import_file, import_source, open_export

__all__ = [
    "FORMATS", "ExtractionSettings", "Extractor", "ImportReport", "detect", "extractor_from", "import_file",
    "import_source", "open_export",
]
