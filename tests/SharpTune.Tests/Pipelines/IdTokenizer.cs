using System.Text.Json.Nodes;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Pipelines;

/// <summary>
/// A tokenizer for the fixture models (which come without one): token id N is the word "tN", split on whitespace,
/// so a text such as "t330 t134" encodes to exactly the ids of a reference tensor. Ids listed in
/// <c>specials</c> get those names instead (e.g. 733 → "[MASK]") and are special tokens.
/// </summary>
internal static class IdTokenizer
{
    public static string Text(IEnumerable<long> ids, IReadOnlyDictionary<int, string>? specials = null) =>
        string.Join(' ', ids.Select(id => Token((int)id, specials)));

    public static string Token(int id, IReadOnlyDictionary<int, string>? specials = null) =>
        specials is not null && specials.TryGetValue(id, out var name) ? name : $"t{id}";

    /// <summary>Writes tokenizer.json for a vocabulary of <paramref name="vocabSize"/> ids into a new folder and returns its path.</summary>
    public static string Write(int vocabSize, IReadOnlyDictionary<int, string> specials)
    {
        var vocab = new JsonObject();
        for (var id = 0; id < vocabSize; id++)
            vocab[Token(id, specials)] = id;
        var added = new JsonArray(specials.OrderBy(s => s.Key).Select(s => (JsonNode)new JsonObject
        {
            ["id"] = s.Key, ["content"] = s.Value, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = true,
        }).ToArray());
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = added,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "WhitespaceSplit" },
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = false },
            ["model"] = new JsonObject { ["type"] = "WordLevel", ["vocab"] = vocab, ["unk_token"] = Token(specials.Keys.Min(), specials) },
        };
        var directory = RepoPaths.NewTempDirectory("sharptune-idtokenizer");
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), json.ToJsonString());
        return directory;
    }
}
