using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Data;

/// <summary>JSONL record files: one JSON object per line, blank lines skipped.</summary>
public static class JsonLines
{
    /// <summary>The objects of <paramref name="path"/> with their 1-based line numbers, read lazily. Throws
    /// <see cref="InvalidDataException"/> naming the file and line for a line that is not JSON or not an object, and
    /// naming the file when it holds no record at all (unless <paramref name="allowEmpty"/>).</summary>
    public static IEnumerable<(int Line, JsonObject Record)> ReadObjects(string path, bool allowEmpty = false)
    {
        var lineNumber = 0;
        var any = false;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}:{lineNumber}: not valid JSON ({e.Message})");
            }
            any = true;
            yield return (lineNumber, node as JsonObject ?? throw new InvalidDataException($"{path}:{lineNumber}: expected a JSON object"));
        }
        if (!any && !allowEmpty)
            throw new InvalidDataException($"{path}: no records (expected one JSON object per line)");
    }
}
