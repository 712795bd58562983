using System.Text.Json.Nodes;
using System.Text;
using SharpTune.Tokenizers.Loading;

namespace SharpTune.Tokenizers.Models;

/// <summary>Options of a BPE model, as in tokenizer.json.</summary>
public sealed record BpeOptions
{
    public string? UnkToken { get; init; }
    public string? ContinuingSubwordPrefix { get; init; }
    public string? EndOfWordSuffix { get; init; }
    public bool FuseUnk { get; init; }
    public bool ByteFallback { get; init; }
    public bool IgnoreMerges { get; init; }
}

/// <summary>Byte-pair encoding with ranked merges (GPT-2, RoBERTa, Llama, ...), applied exactly like Hugging Face's.</summary>
public sealed class BpeModel : ITokenizerModel, IIdTokenizerModel
{
    public JsonObject ToJson() => Definitions.Typed("BPE", ("dropout", null), ("unk_token", Options.UnkToken), ("continuing_subword_prefix", Options.ContinuingSubwordPrefix), ("end_of_word_suffix", Options.EndOfWordSuffix), ("fuse_unk", Options.FuseUnk), ("byte_fallback", Options.ByteFallback), ("ignore_merges", Options.IgnoreMerges), ("vocab", Definitions.Vocab(_vocab)), ("merges", Definitions.Merges(Merges)));

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly string[] _idToToken;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly int? _unkId;
    private readonly int[] _byteIds;
    private readonly WordCache _cache = new();
    private readonly bool _splitAtMetaspace;
    private const char Metaspace = '\u2581';

    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, BpeOptions options)
    {
        _vocab = vocab;
        _lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _idToToken = VocabHelpers.InvertVocab(vocab);
        Options = options;
        Merges = merges;
        var prefixLength = options.ContinuingSubwordPrefix?.Length ?? 0;
        _merges = new Dictionary<long, (int, int)>(merges.Count, PairComparer.Instance);
        for (var rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocab.TryGetValue(left, out var a) || !vocab.TryGetValue(right, out var b))
                throw new InvalidDataException($"BPE merge '{left} {right}' uses a token missing from the vocabulary");
            var merged = left + (prefixLength > 0 && right.StartsWith(options.ContinuingSubwordPrefix!, StringComparison.Ordinal) ? right[prefixLength..] : right);
            if (!vocab.TryGetValue(merged, out var newId))
                throw new InvalidDataException($"BPE merge '{left} {right}' gives '{merged}', missing from the vocabulary");
            _merges.TryAdd(Key(a, b), (rank, newId));
        }
        if (options.UnkToken is { } unk && vocab.TryGetValue(unk, out var unkId))
            _unkId = unkId;
        _byteIds = new int[256];
        for (var b = 0; b < 256; b++)
            _byteIds[b] = vocab.TryGetValue(VocabHelpers.ByteToken((byte)b), out var id) ? id : -1;
        // SentencePiece BPE (Llama) sees a whole sentence as one word. When no piece has ▁ after another char than ▁, no
        // merge crosses a "x▁" boundary, so the word can be cut there into ▁-words that are merged (and cached) alone with
        // the same result; unknown chars must not fuse across the cut, which holds when byte fallback covers every byte.
        var unkCannotFuse = !options.FuseUnk || _unkId is null || (options.ByteFallback && _byteIds.All(b => b >= 0));
        _splitAtMetaspace = options.ContinuingSubwordPrefix is null && options.EndOfWordSuffix is null && unkCannotFuse
                            && vocab.Keys.Any(k => k.Contains(Metaspace)) && vocab.Keys.All(MetaspaceOnlyLeads);
    }

    private static bool MetaspaceOnlyLeads(string piece)
    {
        var at = piece.IndexOf(Metaspace, 1);
        while (at > 0)
        {
            if (piece[at - 1] != Metaspace)
                return false;
            at = at + 1 < piece.Length ? piece.IndexOf(Metaspace, at + 1) : -1;
        }
        return true;
    }

    public BpeOptions Options { get; }
    public IReadOnlyList<(string Left, string Right)> Merges { get; }
    public int VocabSize => _vocab.Count;
    public IReadOnlyDictionary<string, int> GetVocab() => _vocab;
    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;
    public string? IdToToken(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>long.GetHashCode xors the halves, so pairs of small ids collide massively; mix the bits instead.</summary>
    private sealed class PairComparer : IEqualityComparer<long>
    {
        public static readonly PairComparer Instance = new();
        public bool Equals(long x, long y) => x == y;
        public int GetHashCode(long key) => (int)((ulong)key * 0x9E3779B97F4A7C15UL >> 32);
    }

    public void Tokenize(ReadOnlySpan<char> word, List<Token> output)
    {
        if (!_splitAtMetaspace)
        {
            TokenizePart(word, 0, output);
            return;
        }
        var start = 0;
        for (var i = 1; i < word.Length; i++)
            if (word[i] == Metaspace && word[i - 1] != Metaspace)
            {
                TokenizePart(word[start..i], start, output);
                start = i;
            }
        TokenizePart(word[start..], start, output);
    }

    void IIdTokenizerModel.TokenizeToIds(ReadOnlySpan<char> word, List<Token> scratch, List<int> ids)
    {
        // A cached whole word (most words of short texts): its ids straight from the cache, no token list in between.
        if (!_splitAtMetaspace && _cache.TryGet(word, out var cached))
        {
            foreach (var t in cached)
                ids.Add(t.Id);
            return;
        }
        scratch.Clear();
        Tokenize(word, scratch);
        foreach (var t in scratch)
            ids.Add(t.Id);
    }

    /// <summary>Tokens of <paramref name="word"/>, their ranges shifted by <paramref name="offset"/>.</summary>
    private void TokenizePart(ReadOnlySpan<char> word, int offset, List<Token> output)
    {
        if (word.Length == 0)
            return;
        if (_cache.TryGet(word, out var cached))
        {
            if (offset == 0)
                output.AddRange(cached);
            else
                foreach (var t in cached)
                    output.Add(t with { Start = t.Start + offset, End = t.End + offset });
            return;
        }
        var first = output.Count;
        if (Options.IgnoreMerges && _lookup.TryGetValue(word, out var whole))
            output.Add(new Token(whole, _idToToken[whole], 0, word.Length));
        else
            MergeWord(word, output);
        _cache.Add(word, output.GetRange(first, output.Count - first).ToArray());
        if (offset != 0)
            for (var i = first; i < output.Count; i++)
                output[i] = output[i] with { Start = output[i].Start + offset, End = output[i].End + offset };
    }

    private struct Symbol
    {
        public int Id, Start, End, Prev, Next;
    }

    private void MergeWord(ReadOnlySpan<char> word, List<Token> output)
    {
        var symbols = new List<Symbol>(word.Length);
        var prefix = Options.ContinuingSubwordPrefix;
        var suffix = Options.EndOfWordSuffix;
        var lastUnk = false;
        Span<byte> utf8 = stackalloc byte[4];
        var builder = new StringBuilder();
        for (var i = 0; i < word.Length;)
        {
            var n = char.IsHighSurrogate(word[i]) && i + 1 < word.Length ? 2 : 1;
            var piece = word.Slice(i, n);
            int id;
            bool found;
            if ((prefix is null || i == 0) && (suffix is null || i + n < word.Length))
                found = _lookup.TryGetValue(piece, out id);
            else
            {
                builder.Clear();
                if (prefix is not null && i > 0)
                    builder.Append(prefix);
                builder.Append(piece);
                if (suffix is not null && i + n == word.Length)
                    builder.Append(suffix);
                found = _vocab.TryGetValue(builder.ToString(), out id);
            }
            if (found)
            {
                Add(symbols, id, i, i + n);
                lastUnk = false;
            }
            else if (Options.ByteFallback && TryBytes(piece, utf8, out var count))
            {
                for (var b = 0; b < count; b++)
                    Add(symbols, _byteIds[utf8[b]], i, i + n);
                lastUnk = false;
            }
            else if (_unkId is { } unk)
            {
                if (Options.FuseUnk && lastUnk)
                {
                    var last = symbols[^1];
                    last.End = i + n;
                    symbols[^1] = last;
                }
                else
                    Add(symbols, unk, i, i + n);
                lastUnk = true;
            }
            i += n;
        }
        ApplyMerges(symbols);
        foreach (var s in symbols)
            if (s.End >= 0)
                output.Add(new Token(s.Id, _idToToken[s.Id], s.Start, s.End));
    }

    private bool TryBytes(ReadOnlySpan<char> piece, Span<byte> utf8, out int count)
    {
        count = System.Text.Encoding.UTF8.GetBytes(piece, utf8);
        for (var b = 0; b < count; b++)
            if (_byteIds[utf8[b]] < 0)
                return false;
        return true;
    }

    private static void Add(List<Symbol> symbols, int id, int start, int end)
    {
        var index = symbols.Count;
        symbols.Add(new Symbol { Id = id, Start = start, End = end, Prev = index - 1, Next = index + 1 });
    }

    // Hugging Face's Word::merge_all: a priority queue of (rank, position), stale entries skipped.
    private void ApplyMerges(List<Symbol> symbols)
    {
        if (symbols.Count < 2)
            return;
        var queue = new PriorityQueue<(int Pos, int NewId), (int Rank, int Pos)>(symbols.Count);
        for (var i = 0; i + 1 < symbols.Count; i++)
            if (_merges.TryGetValue(Key(symbols[i].Id, symbols[i + 1].Id), out var m))
                queue.Enqueue((i, m.NewId), (m.Rank, i));
        while (queue.TryDequeue(out var top, out _))
        {
            var current = symbols[top.Pos];
            if (current.End < 0 || current.Next >= symbols.Count)
                continue;
            var rightPos = current.Next;
            var right = symbols[rightPos];
            if (!_merges.TryGetValue(Key(current.Id, right.Id), out var check) || check.NewId != top.NewId)
                continue;
            current.Id = top.NewId;
            current.End = right.End;
            current.Next = right.Next;
            symbols[top.Pos] = current;
            right.End = -1; // removed
            symbols[rightPos] = right;
            if (current.Next < symbols.Count)
            {
                var after = symbols[current.Next];
                after.Prev = top.Pos;
                symbols[current.Next] = after;
            }
            if (current.Prev >= 0 && _merges.TryGetValue(Key(symbols[current.Prev].Id, current.Id), out var before))
                queue.Enqueue((current.Prev, before.NewId), (before.Rank, current.Prev));
            if (current.Next < symbols.Count && _merges.TryGetValue(Key(current.Id, symbols[current.Next].Id), out var next))
                queue.Enqueue((top.Pos, next.NewId), (next.Rank, top.Pos));
        }
    }
}
