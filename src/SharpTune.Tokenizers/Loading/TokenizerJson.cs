using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
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
            root = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
        return Parse(root, path, TokenizerConfig.Load(Path.GetDirectoryName(Path.GetFullPath(path))!).SpecialTokens);
    }

    public static Tokenizer Parse(JsonObject root, string source, SpecialTokens? specialTokens)
    {
        var reader = new Reader(source);
        var model = reader.Model(root["model"] ?? throw new InvalidDataException($"{source} has no \"model\""));
        var added = (root["added_tokens"] as JsonArray ?? []).Select(t => new AddedToken(
            reader.Str(t!, "content"), t!["id"]!.GetValue<int>(), Bool(t, "special", false), Bool(t, "single_word", false),
            Bool(t, "lstrip", false), Bool(t, "rstrip", false), Bool(t, "normalized", !Bool(t, "special", false)))).ToList();
        var tokenizer = new Tokenizer(root, reader.Normalizer(root["normalizer"]), reader.PreTokenizer(root["pre_tokenizer"]), model,
            reader.PostProcessor(root["post_processor"]), reader.Decoder(root["decoder"]), added, specialTokens,
            new EncodeOptions { Truncation = Truncation(root["truncation"]), Padding = Padding(root["padding"]) });
        return tokenizer;
    }

    /// <summary>The normalizer and pre-tokenizer of a definition (what trainers need to split a corpus into words).</summary>
    public static (INormalizer?, IPreTokenizer?) Pipeline(JsonNode? normalizer, JsonNode? preTokenizer, string source)
    {
        var reader = new Reader(source);
        return (reader.Normalizer(normalizer), reader.PreTokenizer(preTokenizer));
    }

    internal static bool Bool(JsonNode? node, string key, bool fallback) =>
        node?[key] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : fallback;

    internal static string? OptStr(JsonNode? node, string key) => node?[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static TruncationOptions? Truncation(JsonNode? node) => node is not JsonObject t ? null : new TruncationOptions(t["max_length"]!.GetValue<int>())
    {
        Stride = t["stride"]?.GetValue<int>() ?? 0,
        Strategy = OptStr(t, "strategy") switch { "OnlyFirst" => TruncationStrategy.OnlyFirst, "OnlySecond" => TruncationStrategy.OnlySecond, _ => TruncationStrategy.LongestFirst },
        Direction = OptStr(t, "direction") == "Left" ? Direction.Left : Direction.Right,
    };

    private static PaddingOptions? Padding(JsonNode? node) => node is not JsonObject p ? null : new PaddingOptions
    {
        Length = p["strategy"] is JsonObject s && s["Fixed"] is { } fixedLength ? fixedLength.GetValue<int>() : null,
        PadToMultipleOf = p["pad_to_multiple_of"]?.GetValue<int>(),
        PadId = p["pad_id"]?.GetValue<int>() ?? 0,
        PadTypeId = p["pad_type_id"]?.GetValue<int>() ?? 0,
        PadToken = OptStr(p, "pad_token") ?? "[PAD]",
        Direction = OptStr(p, "direction") == "Left" ? Direction.Left : Direction.Right,
    };

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
    private sealed class Reader(string source)
    {
        public string Str(JsonNode node, string key) =>
            OptStr(node, key) ?? throw new InvalidDataException($"{source}: missing string \"{key}\" in {node.ToJsonString()[..Math.Min(80, node.ToJsonString().Length)]}");

        private InvalidDataException Unknown(string kind, string? type) =>
            new($"Unsupported {kind} type '{type ?? "(none)"}' in {source}");

        private static IEnumerable<JsonNode> Items(JsonNode? node, string key) => (node?[key] as JsonArray ?? []).OfType<JsonNode>();

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
            var (literal, regex) = Pattern(node["pattern"]);
            return new ReplaceNormalizer(literal, regex, Str(node, "content"));
        }

        private (string? Literal, string? Regex) Pattern(JsonNode? pattern) =>
            OptStr(pattern, "String") is { } literal ? (literal, null)
            : OptStr(pattern, "Regex") is { } regex ? (null, regex)
            : throw new InvalidDataException($"{source}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}");

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
            var (literal, regex) = Pattern(node["pattern"]);
            var compiled = new Regex(regex ?? Regex.Escape(literal!), RegexOptions.CultureInvariant | RegexOptions.Compiled);
            return new SplitPreTokenizer(compiled, Behavior(node, SplitBehavior.Isolated), Bool(node, "invert", false));
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
                        OptStr(node, "continuing_subword_prefix") ?? "##", node["max_input_chars_per_word"]?.GetValue<int>() ?? 100);
                case "WordLevel":
                    return new WordLevelModel(Vocab(node), OptStr(node, "unk_token") ?? "<unk>");
                case "Unigram":
                    var pieces = Items(node, "vocab").Select(p => (p[0]!.GetValue<string>(), p[1]!.GetValue<double>())).ToList();
                    return new UnigramModel(pieces, node["unk_id"]?.GetValue<int>(), Bool(node, "byte_fallback", false));
                default:
                    throw Unknown("model", type);
            }
        }

        private Dictionary<string, int> Vocab(JsonNode node)
        {
            var vocab = node["vocab"] as JsonObject ?? throw new InvalidDataException($"{source}: model has no \"vocab\" object");
            var result = new Dictionary<string, int>(vocab.Count, StringComparer.Ordinal);
            foreach (var (token, id) in vocab)
                result[token] = id!.GetValue<int>();
            return result;
        }

        private List<(string, string)> Merges(JsonNode node) => Items(node, "merges").Select(m =>
        {
            if (m is JsonArray pair)
                return (pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>());
            var s = m.GetValue<string>();
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

        private static (string, int) TokenAndId(JsonNode? node) => (node![0]!.GetValue<string>(), node[1]!.GetValue<int>());

        private TemplateProcessor Template(JsonNode node)
        {
            List<TemplatePiece> Pieces(string key) => Items(node, key).Select(p =>
                p["SpecialToken"] is { } special
                    ? new TemplatePiece(Str(special, "id"), -1, special["type_id"]?.GetValue<int>() ?? 0)
                    : p["Sequence"] is { } sequence
                        ? new TemplatePiece(null, Str(sequence, "id") == "B" ? 1 : 0, sequence["type_id"]?.GetValue<int>() ?? 0)
                        : throw new InvalidDataException($"{source}: bad template piece {p.ToJsonString()}")).ToList();
            var specials = new Dictionary<string, TemplateSpecialToken>();
            if (node["special_tokens"] is JsonObject map)
                foreach (var (name, value) in map)
                    specials[name] = new TemplateSpecialToken(name,
                        Items(value, "ids").Select(i => i.GetValue<int>()).ToArray(), Items(value, "tokens").Select(t => t.GetValue<string>()).ToArray());
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
                "Strip" => new StripDecoder(Str(node, "content")[0], node["start"]?.GetValue<int>() ?? 0, node["stop"]?.GetValue<int>() ?? 0),
                "BPEDecoder" => new BpeDecoder(OptStr(node, "suffix") ?? "</w>"),
                _ => throw Unknown("decoder", type),
            };
        }
    }
}
