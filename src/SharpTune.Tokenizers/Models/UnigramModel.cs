using System.Text.Json.Nodes;
using SharpTune.Tokenizers.Loading;

namespace SharpTune.Tokenizers.Models;

/// <summary>SentencePiece unigram language model: the most likely segmentation by Viterbi, as Hugging Face computes it.</summary>
public sealed class UnigramModel : ITokenizerModel
{
    public JsonObject ToJson() => Definitions.Typed("Unigram", ("unk_id", UnkId), ("vocab", Definitions.Array(Pieces.Select(p => new JsonArray(p.Piece, p.Score)))), ("byte_fallback", ByteFallback));

    private const double UnkPenalty = 10.0;
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly int _maxPieceLength;
    private readonly double _minScore;
    private readonly int[] _byteIds;
    private readonly WordCache _cache = new();

    public UnigramModel(IReadOnlyList<(string Piece, double Score)> pieces, int? unkId, bool byteFallback)
    {
        Pieces = pieces;
        UnkId = unkId;
        ByteFallback = byteFallback;
        _vocab = new Dictionary<string, int>(pieces.Count);
        _minScore = double.MaxValue;
        for (var i = 0; i < pieces.Count; i++)
        {
            _vocab.TryAdd(pieces[i].Piece, i);
            _maxPieceLength = Math.Max(_maxPieceLength, pieces[i].Piece.Length);
            _minScore = Math.Min(_minScore, pieces[i].Score);
        }
        _lookup = _vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        if (unkId is { } unk && (unk < 0 || unk >= pieces.Count))
            throw new InvalidDataException($"Unigram unk_id {unk} is outside the vocabulary (size {pieces.Count})");
        _byteIds = new int[256];
        for (var b = 0; b < 256; b++)
            _byteIds[b] = _vocab.TryGetValue(VocabHelpers.ByteToken((byte)b), out var id) ? id : -1;
    }

    public IReadOnlyList<(string Piece, double Score)> Pieces { get; }
    public int? UnkId { get; }
    public bool ByteFallback { get; }
    public int VocabSize => Pieces.Count;
    public IReadOnlyDictionary<string, int> GetVocab() => _vocab;
    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;
    public string? IdToToken(int id) => id >= 0 && id < Pieces.Count ? Pieces[id].Piece : null;

    public void Tokenize(ReadOnlySpan<char> word, List<Token> output)
    {
        if (word.Length == 0)
            return;
        if (_cache.TryGet(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        var first = output.Count;
        foreach (var (start, end) in Viterbi(word.ToString()))
        {
            var piece = word.Slice(start, end - start);
            if (_lookup.TryGetValue(piece, out var id))
            {
                output.Add(new Token(id, Pieces[id].Piece, start, end));
                continue;
            }
            var value = piece.ToString();
            if (ByteFallback && TryAddBytes(value, start, end, output))
                continue;
            output.Add(new Token(UnkId ?? throw new InvalidOperationException("Unigram model has no unk_id for an unknown piece"),
                value, start, end));
        }
        _cache.Add(word, output.GetRange(first, output.Count - first).ToArray());
    }

    private bool TryAddBytes(string value, int start, int end, List<Token> output)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(value);
        if (bytes.Any(b => _byteIds[b] < 0))
            return false;
        foreach (var b in bytes)
            output.Add(new Token(_byteIds[b], VocabHelpers.ByteToken(b), start, end));
        return true;
    }

    /// <summary>Best segmentation as (start, end) char ranges; consecutive unknown chars are fused.</summary>
    internal List<(int Start, int End)> Viterbi(string text)
    {
        var n = text.Length;
        var bestScore = new double[n + 1];
        var startsAt = new int[n + 1];
        var ids = new int[n + 1];
        Array.Fill(startsAt, -1);
        var unkScore = _minScore - UnkPenalty;
        for (var start = 0; start < n;)
        {
            var charLength = char.IsHighSurrogate(text[start]) && start + 1 < n ? 2 : 1;
            var scoreHere = bestScore[start];
            var hasSingle = false;
            var maxLength = Math.Min(_maxPieceLength, n - start);
            for (var length = 1; length <= maxLength; length++)
            {
                if (!_lookup.TryGetValue(text.AsSpan(start, length), out var id))
                    continue;
                var end = start + length;
                var candidate = Pieces[id].Score + scoreHere;
                if (startsAt[end] < 0 || candidate > bestScore[end])
                {
                    bestScore[end] = candidate;
                    startsAt[end] = start;
                    ids[end] = id;
                }
                if (length == charLength)
                    hasSingle = true;
            }
            if (!hasSingle)
            {
                var end = start + charLength;
                var candidate = unkScore + scoreHere;
                if (startsAt[end] < 0 || candidate > bestScore[end])
                {
                    bestScore[end] = candidate;
                    startsAt[end] = start;
                    ids[end] = UnkId ?? -1;
                }
            }
            start += charLength;
        }
        var result = new List<(int, int)>();
        var fusedEnd = -1;
        for (var end = n; end > 0;)
        {
            var start = startsAt[end];
            if (UnkId is { } unk && ids[end] == unk)
            {
                if (fusedEnd < 0)
                    fusedEnd = end;
            }
            else
            {
                if (fusedEnd >= 0)
                {
                    result.Add((end, fusedEnd));
                    fusedEnd = -1;
                }
                result.Add((start, end));
            }
            end = start;
        }
        if (fusedEnd >= 0)
            result.Add((0, fusedEnd));
        result.Reverse();
        return result;
    }
}
