using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using SharpTune.Tokenizers.Loading;
using SharpTune.Tokenizers.Models;
using SharpTune.Tokenizers.Pipeline;

namespace SharpTune.Tokenizers;

/// <summary>
/// A Hugging Face compatible tokenizer: normalizer → pre-tokenizer → model → post-processor, with added tokens,
/// truncation, padding and decoding. Thread-safe for encoding and decoding (batch encoding runs in parallel).
/// </summary>
public sealed class Tokenizer
{
    private readonly AddedVocabulary _added;
    private readonly HashSet<int> _specialIds;
    private readonly JsonObject? _definition; // the tokenizer.json it was read from (saved as it was); null when built from parts

    /// <summary>
    /// A tokenizer built from typed parts, as Hugging Face's <c>Tokenizer(model)</c> with its normalizer, pre_tokenizer,
    /// post_processor and decoder set: e.g. <c>new Tokenizer(new WordPieceModel(vocab), new BertNormalizer(...),
    /// new BertPreTokenizer(), new BertProcessor(...), new WordPieceDecoder("##", true))</c>. <see cref="ToJson"/> writes
    /// the equivalent tokenizer.json.
    /// </summary>
    public Tokenizer(ITokenizerModel model, INormalizer? normalizer = null, IPreTokenizer? preTokenizer = null,
        IPostProcessor? postProcessor = null, IDecoder? decoder = null, IEnumerable<AddedToken>? addedTokens = null,
        SpecialTokens? specialTokens = null, EncodeOptions? defaultOptions = null)
        : this(null, normalizer, preTokenizer, model ?? throw new ArgumentNullException(nameof(model)), postProcessor, decoder,
            addedTokens ?? [], specialTokens, defaultOptions)
    {
    }

    internal Tokenizer(JsonObject? definition, INormalizer? normalizer, IPreTokenizer? preTokenizer, ITokenizerModel model,
        IPostProcessor? postProcessor, IDecoder? decoder, IEnumerable<AddedToken> addedTokens, SpecialTokens? specialTokens, EncodeOptions? defaultOptions = null)
    {
        DefaultOptions = defaultOptions ?? EncodeOptions.Default;
        _definition = definition;
        Normalizer = normalizer;
        PreTokenizer = preTokenizer;
        Model = model;
        PostProcessor = postProcessor;
        Decoder = decoder;
        _added = new AddedVocabulary(addedTokens);
        SpecialTokens = specialTokens ?? InferSpecialTokens();
        _specialIds = _added.Tokens.Where(t => t.Special).Select(t => t.Id)
            .Concat(SpecialTokens.All.Select(TokenToId).OfType<int>()).ToHashSet();
        _addedSingle = postProcessor?.AddedTokens(isPair: false) ?? 0;
        _singleTemplates = [SingleTemplate(addSpecialTokens: false), SingleTemplate(addSpecialTokens: true)];
    }

    private readonly int _addedSingle; // special tokens the post-processor adds to a single text

    public INormalizer? Normalizer { get; }
    public IPreTokenizer? PreTokenizer { get; }
    public ITokenizerModel Model { get; }
    public IPostProcessor? PostProcessor { get; }
    public IDecoder? Decoder { get; }
    public IReadOnlyCollection<AddedToken> AddedTokens => _added.Tokens;
    public SpecialTokens SpecialTokens { get; }

    /// <summary>
    /// The settings of the <c>Encode</c> overloads that take no <see cref="EncodeOptions"/>: the truncation and padding of
    /// the tokenizer.json (or of <see cref="WithTruncation"/> / <see cref="WithPadding"/>), special tokens added.
    /// </summary>
    public EncodeOptions DefaultOptions { get; private set; } = EncodeOptions.Default;

    /// <summary>Truncation of <see cref="DefaultOptions"/> (null: none).</summary>
    public TruncationOptions? Truncation => DefaultOptions.Truncation;

    /// <summary>Padding of <see cref="DefaultOptions"/> (null: none).</summary>
    public PaddingOptions? Padding => DefaultOptions.Padding;

    /// <summary>A copy of this tokenizer (sharing its immutable parts) whose default truncation is <paramref name="truncation"/>.</summary>
    public Tokenizer WithTruncation(TruncationOptions? truncation) => WithOptions(DefaultOptions with { Truncation = truncation });

    /// <summary>A copy of this tokenizer (sharing its immutable parts) whose default padding is <paramref name="padding"/>.</summary>
    public Tokenizer WithPadding(PaddingOptions? padding) => WithOptions(DefaultOptions with { Padding = padding });

    /// <summary>A copy of this tokenizer (sharing its immutable parts) with other <see cref="DefaultOptions"/>.</summary>
    public Tokenizer WithOptions(EncodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var copy = (Tokenizer)MemberwiseClone();
        copy.DefaultOptions = options;
        return copy;
    }

    /// <summary>Model vocabulary plus added tokens that are not in it.</summary>
    public int VocabSize => Model.VocabSize + _added.Tokens.Count(t => Model.TokenToId(t.Content) is null);

    /// <summary>Id used for padding: the padding options', else the pad special token's; null when there is none.</summary>
    public int? PadTokenId => Padding is { } p ? p.PadId : SpecialTokens.Pad is { } pad ? TokenToId(pad) : null;

    /// <summary>Padding options for <paramref name="length"/> (null: to the longest of a batch) with this tokenizer's pad
    /// token (id 0 and "[PAD]" when it has none).</summary>
    public PaddingOptions PaddingTo(int? length = null) => new()
    {
        Length = length,
        PadId = PadTokenId ?? 0,
        PadToken = Padding?.PadToken ?? SpecialTokens.Pad ?? "[PAD]",
    };

    public int? BosTokenId => SpecialTokens.Bos is { } t ? TokenToId(t) : null;
    public int? EosTokenId => SpecialTokens.Eos is { } t ? TokenToId(t) : null;
    public int? UnkTokenId => SpecialTokens.Unk is { } t ? TokenToId(t) : null;

    /// <summary>Loads a <c>tokenizer.json</c> (with tokenizer_config.json / special_tokens_map.json next to it when present).</summary>
    public static Tokenizer FromFile(string path) => TokenizerJson.Load(path);

    /// <summary>Builds a tokenizer from the JSON text of a tokenizer.json; <paramref name="source"/> names it in errors.</summary>
    public static Tokenizer FromJson(string json, string source = "tokenizer.json", SpecialTokens? specialTokens = null)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{source} is not valid JSON: {e.Message}", e);
        }
        return TokenizerJson.Parse(root as JsonObject ?? throw new InvalidDataException($"{source} is not a JSON object"), source, specialTokens);
    }

    /// <summary>The tokenizer as a tokenizer.json document (Hugging Face loads it).</summary>
    public JsonObject ToJson()
    {
        var json = _definition?.DeepClone() as JsonObject ?? Definitions.Tokenizer(Normalizer?.ToJson(), PreTokenizer?.ToJson(),
            Model.ToJson(), PostProcessor?.ToJson(), Decoder?.ToJson(), _added.Tokens);
        json["truncation"] = TokenizerJson.TruncationToJson(Truncation);
        json["padding"] = TokenizerJson.PaddingToJson(Padding);
        return json;
    }

    /// <summary>Writes tokenizer.json atomically (temp file in the same folder, then move).</summary>
    public void Save(string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = full + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        File.WriteAllText(temp, ToJson().ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        File.Move(temp, full, overwrite: true);
    }

    public int? TokenToId(string token) => _added.ByContent(token)?.Id ?? Model.TokenToId(token);

    public string? IdToToken(int id) => _added.ById(id)?.Content ?? Model.IdToToken(id);

    public bool IsSpecialTokenId(int id) => _specialIds.Contains(id);

    /// <summary>Encodes a text, or a pair of texts, with <see cref="DefaultOptions"/> (special tokens as asked).</summary>
    public TokenEncoding Encode(string text, string? pair = null, bool addSpecialTokens = true) =>
        Encode(text, pair, Defaults(addSpecialTokens));

    /// <summary>Encodes a text with the truncation, padding and special tokens of <paramref name="options"/>.</summary>
    public TokenEncoding Encode(string text, EncodeOptions options) => Encode(text, null, options);

    /// <summary>Encodes a text, or a pair of texts, with the truncation, padding and special tokens of <paramref name="options"/>.</summary>
    public TokenEncoding Encode(string text, string? pair, EncodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(options);
        var encoding = EncodeUnpadded(text, pair, options);
        if (options.Padding is { } padding)
            Pad([encoding], padding);
        return encoding;
    }

    /// <summary>Encodes many texts in parallel with <see cref="DefaultOptions"/>; padding "longest" pads to the longest of the batch.</summary>
    public IReadOnlyList<TokenEncoding> EncodeBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true) =>
        EncodeBatch(texts, Defaults(addSpecialTokens));

    /// <summary>Encodes many texts in parallel; padding "longest" pads to the longest of the batch.</summary>
    public IReadOnlyList<TokenEncoding> EncodeBatch(IReadOnlyList<string> texts, EncodeOptions options) =>
        EncodeBatch(texts.Select(t => (t, (string?)null)).ToArray(), options);

    public IReadOnlyList<TokenEncoding> EncodeBatch(IReadOnlyList<(string Text, string? Pair)> inputs, bool addSpecialTokens = true) =>
        EncodeBatch(inputs, Defaults(addSpecialTokens));

    /// <summary>Encodes many texts or pairs in parallel; padding "longest" pads to the longest of the batch.</summary>
    public IReadOnlyList<TokenEncoding> EncodeBatch(IReadOnlyList<(string Text, string? Pair)> inputs, EncodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var encodings = new TokenEncoding[inputs.Count];
        Parallel.For(0, inputs.Count, i => encodings[i] = EncodeUnpadded(inputs[i].Text, inputs[i].Pair, options));
        if (options.Padding is { } padding && encodings.Length > 0)
            Pad(encodings, padding);
        return encodings;
    }

    /// <summary>
    /// The ids of <see cref="Encode(string, string?, bool)"/>: the same pipeline, without token strings, offsets or masks.
    /// </summary>
    public int[] EncodeToIds(string text, bool addSpecialTokens = true) => EncodeToIds(text, null, Defaults(addSpecialTokens));

    /// <summary>The ids of <see cref="Encode(string, string?, EncodeOptions)"/> (overflowing parts are not returned).</summary>
    public int[] EncodeToIds(string text, string? pair, EncodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(options);
        var ids = EncodeToIdsUnpadded(text, pair, options);
        return options.Padding is { } padding ? PadIds(ids, PaddedLength(ids.Length, padding), padding) : ids;
    }

    /// <summary>The ids of a text given as characters (copied into a string: the pipeline's offsets refer to one).</summary>
    public int[] EncodeToIds(ReadOnlySpan<char> text, EncodeOptions? options = null) =>
        EncodeToIds(new string(text), null, options ?? DefaultOptions);

    /// <summary>The ids of <see cref="EncodeBatch(IReadOnlyList{string}, bool)"/>, texts encoded in parallel.</summary>
    public IReadOnlyList<int[]> EncodeBatchToIds(IReadOnlyList<string> texts, bool addSpecialTokens = true) =>
        EncodeBatchToIds(texts, Defaults(addSpecialTokens));

    /// <summary>The ids of <see cref="EncodeBatch(IReadOnlyList{string}, EncodeOptions)"/>, texts encoded in parallel.</summary>
    public IReadOnlyList<int[]> EncodeBatchToIds(IReadOnlyList<string> texts, EncodeOptions options) =>
        EncodeBatchToIds(texts.Select(t => (t, (string?)null)).ToArray(), options);

    /// <summary>The ids of <see cref="EncodeBatch(IReadOnlyList{ValueTuple{string, string}}, EncodeOptions)"/>, encoded in parallel.</summary>
    public IReadOnlyList<int[]> EncodeBatchToIds(IReadOnlyList<(string Text, string? Pair)> inputs, EncodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var result = new int[inputs.Count][];
        Parallel.For(0, inputs.Count, i => result[i] = EncodeToIdsUnpadded(inputs[i].Text, inputs[i].Pair, options));
        if (options.Padding is { } padding && result.Length > 0)
        {
            // "longest" padding depends on the whole batch
            var length = PaddedLength(result.Max(r => r.Length), padding);
            for (var i = 0; i < result.Length; i++)
                result[i] = PadIds(result[i], length, padding);
        }
        return result;
    }

    /// <summary>How many ids <see cref="EncodeToIds(string, string?, EncodeOptions)"/> returns, without keeping them.</summary>
    public int CountTokens(string text, string? pair = null, EncodeOptions? options = null) =>
        EncodeToIds(text, pair, options ?? DefaultOptions).Length;

    /// <summary>How many ids the text encodes to (with <paramref name="options"/>, else <see cref="DefaultOptions"/>).</summary>
    public int CountTokens(ReadOnlySpan<char> text, EncodeOptions? options = null) => EncodeToIds(text, options).Length;

    private EncodeOptions Defaults(bool addSpecialTokens) =>
        addSpecialTokens == DefaultOptions.AddSpecialTokens ? DefaultOptions : DefaultOptions with { AddSpecialTokens = addSpecialTokens };

    private int[] EncodeToIdsUnpadded(string text, string? pair, EncodeOptions options)
    {
        // Pairs, and post-processors that do not put fixed ids around a text, take the full path.
        if (pair is not null || _singleTemplates[options.AddSpecialTokens ? 1 : 0] is not { } template)
            return [.. EncodeUnpadded(text, pair, options).Ids];
        var (before, after) = template;
        var truncation = options.Truncation;
        var ids = _idScratch ??= new List<int>(256);
        ids.Clear();
        // As in the full path: under right-side truncation the text is only tokenized until the word reaching max_length.
        EncodeSequence(text, 0, new IdSink(ids), truncation is { Direction: Direction.Right } t ? Math.Max(1, t.MaxLength) : int.MaxValue);
        var (start, end) = (0, ids.Count);
        if (truncation is not null)
        {
            var added = options.AddSpecialTokens ? _addedSingle : 0;
            (start, end) = KeptRange(ids.Count, truncation with { MaxLength = Math.Max(0, truncation.MaxLength - added) });
        }
        var result = new int[before.Length + end - start + after.Length];
        before.CopyTo(result, 0);
        CollectionsMarshal.AsSpan(ids)[start..end].CopyTo(result.AsSpan(before.Length));
        after.CopyTo(result, before.Length + end - start);
        if (ids.Capacity > 1 << 16)
            _idScratch = null; // do not keep a huge buffer alive for the thread's lifetime
        return result;
    }

    /// <summary>The tokens a single text of <paramref name="length"/> tokens keeps under <paramref name="options"/>
    /// (the same checks and choice as <see cref="Truncate"/>).</summary>
    private static (int Start, int End) KeptRange(int length, TruncationOptions options)
    {
        var max = options.MaxLength;
        if (max > 0 && length <= max)
            return (0, length);
        if (options.Strategy == TruncationStrategy.OnlySecond)
            throw new ArgumentException("Truncation strategy only_second needs a pair of texts");
        if (options.Strategy == TruncationStrategy.OnlyFirst && length <= length - max)
            throw new ArgumentException($"Cannot truncate: the first sequence ({length} tokens) is shorter than the {length - max} tokens to remove");
        if (max == 0)
            return (0, 0);
        if (options.Stride >= max)
            throw new ArgumentException($"Truncation stride ({options.Stride}) must be smaller than the room left for the text ({max} tokens)");
        return options.Direction == Direction.Right ? (0, max) : (length - max, length);
    }

    private static int PaddedLength(int longest, PaddingOptions padding)
    {
        var length = padding.Length ?? longest;
        if (padding.PadToMultipleOf is > 0 and var multiple && length % multiple != 0)
            length += multiple - length % multiple;
        return length;
    }

    private static int[] PadIds(int[] ids, int length, PaddingOptions padding)
    {
        if (ids.Length >= length)
            return ids;
        var result = new int[length];
        Array.Fill(result, padding.PadId);
        ids.CopyTo(result, padding.Direction == Direction.Left ? length - ids.Length : 0);
        return result;
    }

    [ThreadStatic] private static List<int>? _idScratch;

    // Special ids around a single text, without and with special tokens (null: the full path is needed).
    private readonly (int[] Before, int[] After)?[] _singleTemplates;

    /// <summary>
    /// The ids the post-processor puts before and after a single text, found by processing a one-token marker; null when
    /// the result does not hold the text exactly once.
    /// </summary>
    private (int[] Before, int[] After)? SingleTemplate(bool addSpecialTokens)
    {
        var marker = new TokenEncoding(1) { Texts = [string.Empty, null] };
        marker.Add(-1, string.Empty, 0, (0, 0), 0, 0, special: false);
        var entries = Process(marker, null, addSpecialTokens).Entries;
        var at = entries.FindIndex(e => !e.Special);
        if (at < 0 || entries.FindLastIndex(e => !e.Special) != at)
            return null;
        var ids = entries.ConvertAll(e => e.Id);
        return (ids.GetRange(0, at).ToArray(), ids.GetRange(at + 1, ids.Count - at - 1).ToArray());
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        var tokens = new List<string>();
        foreach (var id in ids)
        {
            if (skipSpecialTokens && _specialIds.Contains(id))
                continue;
            if (IdToToken(id) is { } token)
                tokens.Add(token);
        }
        return Decoder is null ? string.Join(' ', tokens) : string.Concat(Decoder.DecodeChain(tokens));
    }

    public IReadOnlyList<string> DecodeBatch(IReadOnlyList<IReadOnlyList<int>> batch, bool skipSpecialTokens = true)
    {
        var result = new string[batch.Count];
        Parallel.For(0, batch.Count, i => result[i] = Decode(batch[i], skipSpecialTokens));
        return result;
    }

    private TokenEncoding EncodeUnpadded(string text, string? pair, EncodeOptions options)
    {
        var addSpecialTokens = options.AddSpecialTokens;
        // Like Hugging Face, a single text under right-side truncation is only tokenized until the word that reaches
        // max_length tokens: the overflow then holds the rest of the tokens produced, not the rest of the text.
        var stopAt = pair is null && options.Truncation is { Direction: Direction.Right } t ? Math.Max(1, t.MaxLength) : int.MaxValue;
        var first = EncodeSequence(text, 0, stopAt, pair is null && addSpecialTokens ? _addedSingle : 0);
        var second = pair is null ? null : EncodeSequence(pair, 1, int.MaxValue, 0);
        if (options.Truncation is { } truncation)
        {
            var added = addSpecialTokens && PostProcessor is not null ? PostProcessor.AddedTokens(second is not null) : 0;
            Truncate(first, second, truncation with { MaxLength = Math.Max(0, truncation.MaxLength - added) });
        }
        var firstOverflow = first.Overflowing.ToArray();
        var secondOverflow = second?.Overflowing.ToArray() ?? [];
        var result = Process(first, second, addSpecialTokens);
        if (result.Overflowing.Count > 0)
            result.OverflowList.Clear();
        // Overflowing parts are processed like the main part: each A overflow with B and B's overflows, then A with B's.
        foreach (var a in firstOverflow)
        {
            if (second is null)
                result.OverflowList.Add(Process(a, null, addSpecialTokens));
            else
            {
                result.OverflowList.Add(Process(a, second, addSpecialTokens));
                foreach (var b in secondOverflow)
                    result.OverflowList.Add(Process(a, b, addSpecialTokens));
            }
        }
        if (second is not null)
            foreach (var b in secondOverflow)
                result.OverflowList.Add(Process(first, b, addSpecialTokens));
        return result;
    }

    [ThreadStatic] private static List<TokenEncoding>? _parts;

    private TokenEncoding Process(TokenEncoding first, TokenEncoding? second, bool addSpecialTokens)
    {
        // One list per thread, not per text: post-processors return it or a new one, and keep neither.
        var parts = _parts ??= new List<TokenEncoding>(2);
        parts.Clear();
        parts.Add(first);
        if (second is not null)
            parts.Add(second);
        if (PostProcessor is not null)
            parts = PostProcessor.Process(parts, addSpecialTokens);
        if (parts.Count == 1)
            return parts[0];
        var merged = new TokenEncoding(parts.Sum(p => p.Length));
        foreach (var part in parts)
            merged.Append(part);
        return merged;
    }

    [ThreadStatic] private static TokenEncoding? _scratch;

    /// <summary>Added-token split, normalization, pre-tokenization and the model, for one input text.</summary>
    private TokenEncoding EncodeSequence(string text, int sequence, int stopAt, int reserve)
    {
        // Tokens gather in a per-thread buffer, then move into an encoding of the exact size (plus room for the special
        // tokens the post-processor inserts): no growth copies, no unused capacity left to the garbage collector.
        var scratch = _scratch ??= new TokenEncoding(256);
        scratch.Entries.Clear();
        EncodeSequence(text, sequence, new EncodingSink(scratch), stopAt);
        var encoding = new TokenEncoding(scratch.Length + reserve) { Texts = sequence == 0 ? [text, null] : [null, text] };
        encoding.Entries.AddRange(CollectionsMarshal.AsSpan(scratch.Entries));
        if (scratch.Entries.Capacity > 1 << 16)
            _scratch = null; // do not keep a huge buffer alive for the thread's lifetime
        return encoding;
    }

    private void EncodeSequence<TSink>(string text, int sequence, TSink sink, int stopAt) where TSink : struct, ITokenSink
    {
        var word = 0;
        var at = 0;
        foreach (var (start, end, token) in _added.FindRaw(text))
        {
            if (start > at)
                EncodeNormalizable(NormalizedString.FromOriginal(text, at, start), sequence, sink, ref word, stopAt);
            if (sink.Count >= stopAt)
                return;
            sink.Add(token.Id, token.Content, (start, end), word++, sequence);
            at = end;
        }
        if (text.Length > at || text.Length == 0)
            EncodeNormalizable(NormalizedString.FromOriginal(text, at, text.Length), sequence, sink, ref word, stopAt);
    }

    private void EncodeNormalizable<TSink>(NormalizedString piece, int sequence, TSink sink, ref int word, int stopAt)
        where TSink : struct, ITokenSink
    {
        Normalizer?.Normalize(piece);
        if (!_added.HasNormalizedTokens)
        {
            EncodeWords(piece, sequence, sink, ref word, stopAt);
            return;
        }
        var at = 0;
        foreach (var (start, end, token) in _added.FindNormalized(piece.Text))
        {
            if (start > at)
                EncodeWords(piece.Slice(at, start), sequence, sink, ref word, stopAt);
            if (sink.Count >= stopAt)
                return;
            sink.Add(token.Id, token.Content, piece.OriginalRange(start, end), word++, sequence);
            at = end;
        }
        if (piece.Length > at)
            EncodeWords(piece.Slice(at, piece.Length), sequence, sink, ref word, stopAt);
    }

    [ThreadStatic] private static List<NormalizedString>? _words;
    [ThreadStatic] private static List<(int Start, int End)>? _ranges;
    [ThreadStatic] private static List<Token>? _tokens;
    [ThreadStatic] private static char[]? _wordBuffer;

    private void EncodeWords<TSink>(NormalizedString piece, int sequence, TSink sink, ref int word, int stopAt)
        where TSink : struct, ITokenSink
    {
        var tokens = _tokens ??= [];
        var ranges = _ranges ??= [];
        ranges.Clear();
        if (PreTokenizer is IRangePreTokenizer fast && fast.TrySplitRanges(piece, ranges))
        {
            // Words as ranges of the piece: no object per word, offsets straight from the piece's alignment.
            var buffer = _wordBuffer is { } b && b.Length >= piece.Length ? b : _wordBuffer = new char[Math.Max(256, piece.Length)];
            foreach (var (start, end) in ranges)
            {
                if (sink.Count >= stopAt)
                    return;
                sink.AddWord(Model, fast.WordText(piece.Span[start..end], buffer), tokens, piece, start, word++, sequence);
            }
            return;
        }
        var words = _words ??= [];
        words.Clear();
        if (PreTokenizer is null)
            words.Add(piece);
        else
            PreTokenizer.Split(piece, words);
        foreach (var w in words)
        {
            if (sink.Count >= stopAt)
                return;
            sink.AddWord(Model, w.Span, tokens, w, 0, word++, sequence);
        }
    }

    private static void Truncate(TokenEncoding first, TokenEncoding? second, TruncationOptions options)
    {
        var total = first.Length + (second?.Length ?? 0);
        if (options.MaxLength > 0 && total <= options.MaxLength)
            return;
        var max = options.MaxLength;
        switch (options.Strategy)
        {
            case TruncationStrategy.LongestFirst when second is not null:
            {
                int n1 = first.Length, n2 = second.Length;
                var swap = n1 > n2;
                if (swap)
                    (n1, n2) = (n2, n1);
                n2 = n1 > max ? n1 : Math.Max(n1, max - n1);
                if (n1 + n2 > max)
                {
                    n1 = max / 2;
                    n2 = n1 + max % 2;
                }
                if (swap)
                    (n1, n2) = (n2, n1);
                TruncateOne(first, n1, options);
                TruncateOne(second, n2, options);
                break;
            }
            case TruncationStrategy.LongestFirst:
                TruncateOne(first, max, options);
                break;
            default:
            {
                var target = options.Strategy == TruncationStrategy.OnlyFirst ? first
                    : second ?? throw new ArgumentException("Truncation strategy only_second needs a pair of texts");
                var remove = total - max;
                if (target.Length <= remove)
                    throw new ArgumentException(
                        $"Cannot truncate: the {(target == first ? "first" : "second")} sequence ({target.Length} tokens) is shorter than the {remove} tokens to remove");
                TruncateOne(target, target.Length - remove, options);
                break;
            }
        }
    }

    /// <summary>Keeps <paramref name="maxLength"/> tokens; the rest become overflowing windows overlapping by the stride.</summary>
    private static void TruncateOne(TokenEncoding encoding, int maxLength, TruncationOptions options)
    {
        var length = encoding.Length;
        if (maxLength >= length)
            return;
        var parts = new List<(int Start, int End)>();
        if (maxLength == 0)
            parts.AddRange([(0, 0), (0, length)]);
        else
        {
            if (options.Stride >= maxLength)
                throw new ArgumentException($"Truncation stride ({options.Stride}) must be smaller than the room left for the text ({maxLength} tokens)");
            var step = maxLength - options.Stride;
            if (options.Direction == Direction.Right)
                for (var start = 0; ; start += step)
                {
                    var stop = Math.Min(start + maxLength, length);
                    parts.Add((start, stop));
                    if (stop == length)
                        break;
                }
            else
                for (var stop = length; ; stop -= step)
                {
                    var start = Math.Max(0, stop - maxLength);
                    parts.Add((start, stop));
                    if (start == 0)
                        break;
                }
        }
        var slices = parts.Select(p => encoding.Slice(p.Start, p.End)).ToList();
        encoding.ReplaceWith(slices[0]);
        encoding.OverflowList.Clear();
        encoding.OverflowList.AddRange(slices.Skip(1));
    }

    private static void Pad(IReadOnlyList<TokenEncoding> encodings, PaddingOptions padding)
    {
        var length = PaddedLength(encodings.Max(e => e.Length), padding);
        foreach (var encoding in encodings)
            encoding.Pad(length, padding.PadId, padding.PadTypeId, padding.PadToken, padding.Direction == Direction.Left);
    }

    private SpecialTokens InferSpecialTokens()
    {
        string? Find(params string[] candidates) => candidates.FirstOrDefault(c => TokenToId(c) is not null);
        return new SpecialTokens
        {
            Bos = Find("<s>", "<|begin_of_text|>", "<bos>"),
            Eos = Find("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"),
            Unk = Find("[UNK]", "<unk>", "<|endoftext|>"),
            Pad = Find("[PAD]", "<pad>"),
            Cls = Find("[CLS]"),
            Sep = Find("[SEP]"),
            Mask = Find("[MASK]", "<mask>"),
        };
    }
}
