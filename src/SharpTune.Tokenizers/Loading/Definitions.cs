using System.Text.Json.Nodes;

namespace SharpTune.Tokenizers.Loading;

/// <summary>Writers of tokenizer.json fragments, for the parts' <c>ToJson</c> methods.</summary>
internal static class Definitions
{
    public static JsonObject Tokenizer(JsonNode? normalizer, JsonNode? preTokenizer, JsonNode model, JsonNode? postProcessor,
        JsonNode? decoder, IEnumerable<AddedToken> addedTokens) => new()
    {
        ["version"] = "1.0",
        ["truncation"] = null,
        ["padding"] = null,
        ["added_tokens"] = new JsonArray(addedTokens.OrderBy(t => t.Id).Select(t => (JsonNode)new JsonObject
        {
            ["id"] = t.Id,
            ["content"] = t.Content,
            ["single_word"] = t.SingleWord,
            ["lstrip"] = t.LStrip,
            ["rstrip"] = t.RStrip,
            ["normalized"] = t.Normalized,
            ["special"] = t.Special,
        }).ToArray()),
        ["normalizer"] = normalizer,
        ["pre_tokenizer"] = preTokenizer,
        ["post_processor"] = postProcessor,
        ["decoder"] = decoder,
        ["model"] = model,
    };

    public static JsonArray Array(IEnumerable<JsonNode> items) => new(items.ToArray());

    public static JsonObject Template(Pipeline.TemplateProcessor template)
    {
        JsonArray Pieces(IEnumerable<Pipeline.TemplatePiece> pieces) => Array(pieces.Select(p => (JsonNode)(p.SpecialTokenId is { } id
            ? new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = id, ["type_id"] = p.TypeId } }
            : new JsonObject { ["Sequence"] = new JsonObject { ["id"] = p.Sequence == 1 ? "B" : "A", ["type_id"] = p.TypeId } })));
        var specials = new JsonObject();
        foreach (var (name, special) in template.SpecialTokens.OrderBy(s => s.Key, StringComparer.Ordinal))
            specials[name] = new JsonObject
            {
                ["id"] = special.Id,
                ["ids"] = Array(special.Ids.Select(i => (JsonNode)i)),
                ["tokens"] = Array(special.Tokens.Select(t => (JsonNode)t)),
            };
        return Typed("TemplateProcessing", ("single", Pieces(template.Single)), ("pair", Pieces(template.Pair)), ("special_tokens", specials));
    }

    public static JsonObject Typed(string type, params (string Key, JsonNode? Value)[] fields)
    {
        var node = new JsonObject { ["type"] = type };
        foreach (var (key, value) in fields)
            node[key] = value;
        return node;
    }

    public static JsonObject Vocab(IEnumerable<KeyValuePair<string, int>> tokens)
    {
        var vocab = new JsonObject();
        foreach (var (token, id) in tokens.OrderBy(t => t.Value))
            vocab.TryAdd(token, id);
        return vocab;
    }

    public static JsonArray Merges(IEnumerable<(string Left, string Right)> merges) =>
        new(merges.Select(m => (JsonNode)new JsonArray(m.Left, m.Right)).ToArray());
}
