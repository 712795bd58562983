using System.Text.Json.Nodes;

namespace SharpTune.Tokenizers.Loading;

/// <summary>Builders for tokenizer.json fragments, shared by the format converters and the trainers.</summary>
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

    public static JsonObject Typed(string type, params (string Key, JsonNode? Value)[] fields)
    {
        var node = new JsonObject { ["type"] = type };
        foreach (var (key, value) in fields)
            node[key] = value;
        return node;
    }

    public static JsonObject Sequence(string type, string key, params JsonNode[] items) =>
        Typed("Sequence", (key, new JsonArray(items)));

    public static JsonObject Pattern(string literal) => new() { ["String"] = literal };

    public static JsonObject Vocab(IReadOnlyList<string> tokens)
    {
        var vocab = new JsonObject();
        for (var i = 0; i < tokens.Count; i++)
            vocab.TryAdd(tokens[i], i);
        return vocab;
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

    public static JsonObject BpeModel(JsonObject vocab, JsonArray merges, string? unk = null, bool byteFallback = false,
        bool fuseUnk = false, string? continuingSubwordPrefix = null, string? endOfWordSuffix = null) => Typed("BPE",
        ("dropout", null), ("unk_token", unk), ("continuing_subword_prefix", continuingSubwordPrefix),
        ("end_of_word_suffix", endOfWordSuffix), ("fuse_unk", fuseUnk), ("byte_fallback", byteFallback), ("ignore_merges", false),
        ("vocab", vocab), ("merges", merges));

    public static JsonObject WordPieceModel(JsonObject vocab, string unk = "[UNK]", string prefix = "##") => Typed("WordPiece",
        ("unk_token", unk), ("continuing_subword_prefix", prefix), ("max_input_chars_per_word", 100), ("vocab", vocab));

    public static JsonObject UnigramModel(IEnumerable<(string Piece, double Score)> pieces, int? unkId, bool byteFallback) => Typed("Unigram",
        ("unk_id", unkId), ("vocab", new JsonArray(pieces.Select(p => (JsonNode)new JsonArray(p.Piece, p.Score)).ToArray())),
        ("byte_fallback", byteFallback));

    public static JsonObject BertTemplate(string cls, int clsId, string sep, int sepId)
    {
        JsonNode Special(string id, int type) => new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = id, ["type_id"] = type } };
        JsonNode Seq(string id, int type) => new JsonObject { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = type } };
        JsonNode Entry(string token, int id) => new JsonObject { ["id"] = token, ["ids"] = new JsonArray(id), ["tokens"] = new JsonArray(token) };
        return Typed("TemplateProcessing",
            ("single", new JsonArray(Special(cls, 0), Seq("A", 0), Special(sep, 0))),
            ("pair", new JsonArray(Special(cls, 0), Seq("A", 0), Special(sep, 0), Seq("B", 1), Special(sep, 1))),
            ("special_tokens", new JsonObject { [cls] = Entry(cls, clsId), [sep] = Entry(sep, sepId) }));
    }

    public static JsonObject BertNormalizer(bool lowercase) => Typed("BertNormalizer", ("clean_text", true),
        ("handle_chinese_chars", true), ("strip_accents", null), ("lowercase", lowercase));

    public static JsonObject ByteLevel(bool addPrefixSpace, bool trimOffsets) => Typed("ByteLevel",
        ("add_prefix_space", addPrefixSpace), ("trim_offsets", trimOffsets), ("use_regex", true));

    public static JsonObject Metaspace() => Typed("Metaspace", ("replacement", "\u2581"), ("prepend_scheme", "always"), ("split", true));

    /// <summary>Llama-style SentencePiece BPE: ▁ for spaces with a dummy prefix, byte fallback on decode.</summary>
    public static (JsonObject Normalizer, JsonObject Decoder) SentencePieceBpePipeline(bool addDummyPrefix)
    {
        var replace = Typed("Replace", ("pattern", Pattern(" ")), ("content", "\u2581"));
        var normalizer = addDummyPrefix
            ? Sequence("Sequence", "normalizers", Typed("Prepend", ("prepend", "\u2581")), replace)
            : Sequence("Sequence", "normalizers", replace);
        var decoders = new List<JsonNode>
        {
            Typed("Replace", ("pattern", Pattern("\u2581")), ("content", " ")), Typed("ByteFallback"), Typed("Fuse"),
        };
        if (addDummyPrefix)
            decoders.Add(Typed("Strip", ("content", " "), ("start", 1), ("stop", 0)));
        return (normalizer, Sequence("Sequence", "decoders", decoders.ToArray()));
    }
}
