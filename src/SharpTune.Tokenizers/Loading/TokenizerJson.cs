using System.Text;
using System.Text.Json.Nodes;
using SharpTune.Tokenizers.Models;
using SharpTune.Tokenizers.Pipeline;

namespace SharpTune.Tokenizers.Loading;

/// <summary>Reads (and writes the options of) Hugging Face's tokenizer.json format.</summary>
internal static class TokenizerJson
{
    public static Tokenizer Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Tokenizer file not found: {path}", path);
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path} is not a JSON object");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
        return Parse(root, path, TokenizerConfig.Load(Path.GetDirectoryName(Path.GetFullPath(path))!).SpecialTokens);
    }

    /// <summary>
    /// Builds the tokenizer a tokenizer.json describes. Whatever is wrong in it (wrong types, missing parts, ids out of range,
    /// invalid regexes) ends in one <see cref="InvalidDataException"/> whose message names <paramref name="source"/>.
    /// </summary>
    public static Tokenizer Parse(JsonObject root, string source, SpecialTokens? specialTokens)
    {
        try
        {
            var modelNode = root["model"] ?? throw new InvalidDataException($"{source} has no \"model\"");
            var addedNodes = root["added_tokens"] switch
            {
                null => [],
                JsonArray array => array,
                var other => throw new InvalidDataException($"{source}: \"added_tokens\" must be an array (got {Show(other)})"),
            };
            // Ids index arrays (the model's id → token table, embeddings): they must be dense enough to bound memory.
            var entries = (modelNode["vocab"] switch { JsonObject o => o.Count, JsonArray a => a.Count, _ => 0 }) + addedNodes.Count;
            var reader = new Reader(source, idLimit: 2L * entries + 256);
            var model = reader.Model(modelNode);
            var added = addedNodes.Select(t => t is JsonObject ? new AddedToken(reader.Str(t, "content"), reader.Id(t["id"], "added token id"),
                Bool(t, "special", false), Bool(t, "single_word", false), Bool(t, "lstrip", false), Bool(t, "rstrip", false),
                Bool(t, "normalized", !Bool(t, "special", false)))
                : throw new InvalidDataException($"{source}: added token {Show(t)} is not an object")).ToList();
            return new Tokenizer(root, reader.Normalizer(root["normalizer"]), reader.PreTokenizer(root["pre_tokenizer"]), model,
                reader.PostProcessor(root["post_processor"]), reader.Decoder(root["decoder"]), added, specialTokens,
                new EncodeOptions { Truncation = reader.Truncation(root["truncation"]), Padding = reader.Padding(root["padding"]) });
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException or IndexOutOfRangeException
                                      or ArgumentException or KeyNotFoundException or OverflowException or InvalidCastException)
        {
            // A value of the wrong type or shape somewhere the reader takes it on trust.
            throw new InvalidDataException($"{source}: malformed tokenizer definition ({e.Message})", e);
        }
    }

    internal static string Show(JsonNode? node)
    {
        var text = node?.ToJsonString() ?? "null";
        return text.Length <= 60 ? text : text[..57] + "...";
    }

    internal static bool Bool(JsonNode? node, string key, bool fallback) =>
        node is JsonObject o && o[key] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : fallback;

    internal static string? OptStr(JsonNode? node, string key) => node is JsonObject o && o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static string? OptStr(JsonArray array, int index) => array[index] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static string? OptStr(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    public static JsonNode? TruncationToJson(TruncationOptions? t) => t is null ? null : new JsonObject
    {
        ["direction"] = t.Direction.ToString(),
        ["max_length"] = t.MaxLength,
        ["strategy"] = t.Strategy.ToString(),
        ["stride"] = t.Stride,
    };

    public static JsonNode? PaddingToJson(PaddingOptions? p) => p is null ? null : new JsonObject
    {
        ["strategy"] = p.Length is { } length ? new JsonObject { ["Fixed"] = length } : JsonValue.Create("BatchLongest"),
        ["direction"] = p.Direction.ToString(),
        ["pad_to_multiple_of"] = p.PadToMultipleOf,
        ["pad_id"] = p.PadId,
        ["pad_type_id"] = p.PadTypeId,
        ["pad_token"] = p.PadToken,
    };

    /// <summary>Builds pipeline components; every error names the component type and the source file.</summary>
    private sealed class Reader(string source, long idLimit = int.MaxValue + 1L)
    {
        /// <summary>An integer in [<paramref name="min"/>, <paramref name="max"/>]; anything else names the value and the file.</summary>
        public int Int(JsonNode? node, string what, long min = 0, long max = int.MaxValue)
        {
            // Values built in memory hold an int; parsed ones a JSON number that may not fit one.
            long? value = node is not JsonValue v ? null : v.TryGetValue<int>(out var i) ? i : v.TryGetValue<long>(out var l) ? l : null;
            if (value >= min && value <= max)
                return (int)value.Value;
            throw new InvalidDataException($"{source}: {what} must be an integer in [{min}, {max}] (got {Show(node)})");
        }

        public int? OptInt(JsonNode? node, string what, long min = 0, long max = int.MaxValue) => node is null ? null : Int(node, what, min, max);

        /// <summary>A token id: non-negative and below twice the number of tokens defined (plus 256).</summary>
        public int Id(JsonNode? node, string what) => Int(node, what, 0, idLimit - 1);

        public TruncationOptions? Truncation(JsonNode? node) => node is not JsonObject t ? null
            : new TruncationOptions(Int(t["max_length"], "truncation max_length"))
            {
                Stride = OptInt(t["stride"], "truncation stride") ?? 0,
                Strategy = OptStr(t, "strategy") switch { "OnlyFirst" => TruncationStrategy.OnlyFirst, "OnlySecond" => TruncationStrategy.OnlySecond, _ => TruncationStrategy.LongestFirst },
                Direction = OptStr(t, "direction") == "Left" ? Direction.Left : Direction.Right,
            };

        public PaddingOptions? Padding(JsonNode? node) => node is not JsonObject p ? null : new PaddingOptions
        {
            Length = p["strategy"] is JsonObject s && s["Fixed"] is { } fixedLength ? Int(fixedLength, "padding length") : null,
            PadToMultipleOf = OptInt(p["pad_to_multiple_of"], "pad_to_multiple_of"),
            PadId = OptInt(p["pad_id"], "pad_id") ?? 0,
            PadTypeId = OptInt(p["pad_type_id"], "pad_type_id") ?? 0,
            PadToken = OptStr(p, "pad_token") ?? "[PAD]",
            Direction = OptStr(p, "direction") == "Left" ? Direction.Left : Direction.Right,
        };

        public string Str(JsonNode node, string key) =>
            OptStr(node, key) ?? throw new InvalidDataException($"{source}: missing string \"{key}\" in {node.ToJsonString()[..Math.Min(80, node.ToJsonString().Length)]}");

        private InvalidDataException Unknown(string kind, string? type) =>
            new($"Unsupported {kind} type '{type ?? "(none)"}' in {source}");

        private IEnumerable<JsonNode> Items(JsonNode? node, string key) => node?[key] switch
        {
            null => [],
            JsonArray array => array.Select(item => item ?? throw new InvalidDataException($"{source}: \"{key}\" holds a null")),
            var other => throw new InvalidDataException($"{source}: \"{key}\" must be an array (got {Show(other)})"),
        };

        public INormalizer? Normalizer(JsonNode? node)
        {
            if (node is null)
                return null;
            var type = OptStr(node, "type");
            return type switch
            {
                "Sequence" => new SequenceNormalizer(Items(node, "normalizers").Select(n => Normalizer(n)!).ToList()),
                "BertNormalizer" => new BertNormalizer(Bool(node, "clean_text", true), Bool(node, "handle_chinese_chars", true),
                    node["strip_accents"] is JsonValue v && v.TryGetValue<bool>(out var strip) ? strip : null, Bool(node, "lowercase", true)),
                "NFC" => new UnicodeNormalizer(NormalizationForm.FormC),
                "NFD" => new UnicodeNormalizer(NormalizationForm.FormD),
                "NFKC" => new UnicodeNormalizer(NormalizationForm.FormKC),
                "NFKD" => new UnicodeNormalizer(NormalizationForm.FormKD),
                "Lowercase" => new LowercaseNormalizer(),
                "StripAccents" => new StripAccentsNormalizer(),
                "Strip" => new StripNormalizer(Bool(node, "strip_left", true), Bool(node, "strip_right", true)),
                "Prepend" => new PrependNormalizer(Str(node, "prepend")),
                "Replace" => Replace(node),
                _ => throw Unknown("normalizer", type),
            };
        }

        private ReplaceNormalizer Replace(JsonNode node)
        {
            return new ReplaceNormalizer(Pattern(node["pattern"]), Str(node, "content"));
        }

        private TokenizerPattern Pattern(JsonNode? pattern)
        {
            if (OptStr(pattern, "String") is { } literal)
                return TokenizerPattern.FromLiteral(literal);
            var regex = OptStr(pattern, "Regex") ?? throw new InvalidDataException($"{source}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}");
            try
            {
                return TokenizerPattern.FromRegex(regex, source);
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"{source}: {e.Message}", e);
            }
        }

        public IPreTokenizer? PreTokenizer(JsonNode? node)
        {
            if (node is null)
                return null;
            var type = OptStr(node, "type");
            return type switch
            {
                "Sequence" => new SequencePreTokenizer(Items(node, "pretokenizers").Select(n => PreTokenizer(n)!).ToList()),
                "BertPreTokenizer" => new BertPreTokenizer(),
                "Whitespace" => new WhitespacePreTokenizer(),
                "WhitespaceSplit" => new WhitespaceSplitPreTokenizer(),
                "CharDelimiterSplit" => new CharDelimiterSplitPreTokenizer(Str(node, "delimiter")[0]),
                "Punctuation" => new PunctuationPreTokenizer(Behavior(node, SplitBehavior.Isolated)),
                "Digits" => new DigitsPreTokenizer(Bool(node, "individual_digits", false)),
                "Metaspace" => new MetaspacePreTokenizer(Str(node, "replacement")[0], Prepend(node), Bool(node, "split", true)),
                "ByteLevel" => new ByteLevelPreTokenizer(Bool(node, "add_prefix_space", true), Bool(node, "use_regex", true)),
                "Split" => SplitPre(node),
                _ => throw Unknown("pre_tokenizer", type),
            };
        }

        private SplitPreTokenizer SplitPre(JsonNode node)
        {
            return new SplitPreTokenizer(Pattern(node["pattern"]), Behavior(node, SplitBehavior.Isolated), Bool(node, "invert", false));
        }

        private SplitBehavior Behavior(JsonNode node, SplitBehavior fallback) => OptStr(node, "behavior") switch
        {
            null => fallback,
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            var other => throw Unknown("split behavior", other),
        };

        private PrependScheme Prepend(JsonNode node) => OptStr(node, "prepend_scheme") switch
        {
            "always" => PrependScheme.Always,
            "first" => PrependScheme.First,
            "never" => PrependScheme.Never,
            null => Bool(node, "add_prefix_space", true) ? PrependScheme.Always : PrependScheme.Never,
            var other => throw Unknown("prepend_scheme", other),
        };

        public ITokenizerModel Model(JsonNode node)
        {
            var type = OptStr(node, "type") ?? (node["merges"] is not null ? "BPE" : node["vocab"] is JsonArray ? "Unigram"
                : node["continuing_subword_prefix"] is not null ? "WordPiece" : "WordLevel");
            switch (type)
            {
                case "BPE":
                    return new BpeModel(Vocab(node), Merges(node), new BpeOptions
                    {
                        UnkToken = OptStr(node, "unk_token"),
                        ContinuingSubwordPrefix = OptStr(node, "continuing_subword_prefix"),
                        EndOfWordSuffix = OptStr(node, "end_of_word_suffix"),
                        FuseUnk = Bool(node, "fuse_unk", false),
                        ByteFallback = Bool(node, "byte_fallback", false),
                        IgnoreMerges = Bool(node, "ignore_merges", false),
                    });
                case "WordPiece":
                    return new WordPieceModel(Vocab(node), OptStr(node, "unk_token") ?? "[UNK]",
                        OptStr(node, "continuing_subword_prefix") ?? "##", OptInt(node["max_input_chars_per_word"], "max_input_chars_per_word") ?? 100);
                case "WordLevel":
                    return new WordLevelModel(Vocab(node), OptStr(node, "unk_token") ?? "<unk>");
                case "Unigram":
                    var pieces = Items(node, "vocab").Select(p => p is JsonArray { Count: 2 } a && OptStr(a, 0) is { } piece
                        && a[1] is JsonValue v && v.TryGetValue<double>(out var score) ? (piece, score)
                        : throw new InvalidDataException($"{source}: Unigram vocab entry {Show(p)} is not [piece, score]")).ToList();
                    return new UnigramModel(pieces, OptInt(node["unk_id"], "unk_id", 0, pieces.Count - 1), Bool(node, "byte_fallback", false));
                default:
                    throw Unknown("model", type);
            }
        }

        private Dictionary<string, int> Vocab(JsonNode node)
        {
            var vocab = node["vocab"] as JsonObject ?? throw new InvalidDataException($"{source}: model has no \"vocab\" object");
            var result = new Dictionary<string, int>(vocab.Count, StringComparer.Ordinal);
            foreach (var (token, id) in vocab)
                result[token] = Id(id, $"vocab id of {Show(JsonValue.Create(token))}");
            return result;
        }

        private List<(string, string)> Merges(JsonNode node) => Items(node, "merges").Select(m =>
        {
            if (m is JsonArray { Count: 2 } pair && OptStr(pair, 0) is { } left && OptStr(pair, 1) is { } right)
                return (left, right);
            var s = m is JsonValue v && v.TryGetValue<string>(out var text) ? text : throw new InvalidDataException($"{source}: bad merge {Show(m)}");
            var space = s.IndexOf(' ', 1);
            return space < 0 ? throw new InvalidDataException($"{source}: bad merge '{s}'") : (s[..space], s[(space + 1)..]);
        }).ToList();

        public IPostProcessor? PostProcessor(JsonNode? node)
        {
            if (node is null)
                return null;
            var type = OptStr(node, "type");
            return type switch
            {
                "TemplateProcessing" => Template(node),
                "BertProcessing" => new BertProcessor(TokenAndId(node["sep"]), TokenAndId(node["cls"])),
                "RobertaProcessing" => new RobertaProcessor(TokenAndId(node["sep"]), TokenAndId(node["cls"]),
                    Bool(node, "trim_offsets", true), Bool(node, "add_prefix_space", true)),
                "ByteLevel" => new ByteLevelProcessor(Bool(node, "trim_offsets", true), Bool(node, "add_prefix_space", true)),
                "Sequence" => new SequenceProcessor(Items(node, "processors").Select(p => PostProcessor(p)!).ToList()),
                _ => throw Unknown("post_processor", type),
            };
        }

        private (string, int) TokenAndId(JsonNode? node) => node is JsonArray { Count: 2 } a && OptStr(a, 0) is { } token
            ? (token, Id(a[1], $"id of {token}"))
            : throw new InvalidDataException($"{source}: expected [token, id], got {Show(node)}");

        private TemplateProcessor Template(JsonNode node)
        {
            List<TemplatePiece> Pieces(string key) => Items(node, key).Select(p =>
                p["SpecialToken"] is { } special
                    ? new TemplatePiece(Str(special, "id"), -1, OptInt(special["type_id"], "type_id") ?? 0)
                    : p["Sequence"] is { } sequence
                        ? new TemplatePiece(null, Str(sequence, "id") == "B" ? 1 : 0, OptInt(sequence["type_id"], "type_id") ?? 0)
                        : throw new InvalidDataException($"{source}: bad template piece {p.ToJsonString()}")).ToList();
            var specials = new Dictionary<string, TemplateSpecialToken>();
            if (node["special_tokens"] is JsonObject map)
                foreach (var (name, value) in map)
                    specials[name] = new TemplateSpecialToken(name,
                        Items(value, "ids").Select(i => Id(i, $"id of special token {name}")).ToArray(),
                        Items(value, "tokens").Select(t => OptStr(t) ?? throw new InvalidDataException($"{source}: special token {name} has a token {Show(t)} that is not a string")).ToArray());
            return new TemplateProcessor(Pieces("single"), Pieces("pair"), specials);
        }

        public IDecoder? Decoder(JsonNode? node)
        {
            if (node is null)
                return null;
            var type = OptStr(node, "type");
            return type switch
            {
                "Sequence" => new SequenceDecoder(Items(node, "decoders").Select(d => Decoder(d)!).ToList()),
                "ByteLevel" => new ByteLevelDecoder(),
                "WordPiece" => new WordPieceDecoder(OptStr(node, "prefix") ?? "##", Bool(node, "cleanup", true)),
                "Metaspace" => new MetaspaceDecoder(Str(node, "replacement")[0], Prepend(node)),
                "ByteFallback" => new ByteFallbackDecoder(),
                "Fuse" => new FuseDecoder(),
                "Replace" => new ReplaceDecoder(Replace(node)),
                "Strip" => new StripDecoder(Str(node, "content")[0], OptInt(node["start"], "Strip start") ?? 0, OptInt(node["stop"], "Strip stop") ?? 0),
                "BPEDecoder" => new BpeDecoder(OptStr(node, "suffix") ?? "</w>"),
                _ => throw Unknown("decoder", type),
            };
        }
    }
}
