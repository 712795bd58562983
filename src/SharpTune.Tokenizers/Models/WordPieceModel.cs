using System.Text;

namespace SharpTune.Tokenizers.Models;

/// <summary>BERT's greedy longest-match-first WordPiece.</summary>
public sealed class WordPieceModel : ITokenizerModel
{
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly string[] _idToToken;
    private readonly int _unkId;
    private readonly WordCache _cache = new(); // words split into several pieces (whole words are one lookup anyway)

    public WordPieceModel(Dictionary<string, int> vocab, string unkToken = "[UNK]", string continuingSubwordPrefix = "##",
        int maxInputCharsPerWord = 100)
    {
        _vocab = vocab;
        _lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _idToToken = VocabHelpers.InvertVocab(vocab);
        UnkToken = unkToken;
        ContinuingSubwordPrefix = continuingSubwordPrefix;
        MaxInputCharsPerWord = maxInputCharsPerWord;
        if (!vocab.TryGetValue(unkToken, out _unkId))
            throw new InvalidDataException($"WordPiece unk_token '{unkToken}' is not in the vocabulary");
    }

    public string UnkToken { get; }
    public string ContinuingSubwordPrefix { get; }
    public int MaxInputCharsPerWord { get; }
    public int VocabSize => _vocab.Count;
    public IReadOnlyDictionary<string, int> GetVocab() => _vocab;
    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;
    public string? IdToToken(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    public void Tokenize(ReadOnlySpan<char> word, List<Token> output)
    {
        if (word.Length > MaxInputCharsPerWord && CodePointCount(word) > MaxInputCharsPerWord)
        {
            output.Add(new Token(_unkId, UnkToken, 0, word.Length));
            return;
        }
        if (_lookup.TryGetValue(word, out var whole))
        {
            output.Add(new Token(whole, _idToToken[whole], 0, word.Length));
            return;
        }
        if (_cache.TryGet(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        var first = output.Count;
        GreedyLongestMatch(word, output);
        _cache.Add(word, output.GetRange(first, output.Count - first).ToArray());
    }

    private void GreedyLongestMatch(ReadOnlySpan<char> word, List<Token> output)
    {
        var first = output.Count;
        var prefix = ContinuingSubwordPrefix;
        Span<char> buffer = word.Length + prefix.Length <= 256 ? stackalloc char[word.Length + prefix.Length] : new char[word.Length + prefix.Length];
        prefix.AsSpan().CopyTo(buffer);
        var start = 0;
        while (start < word.Length)
        {
            var end = word.Length;
            var found = -1;
            while (start < end)
            {
                var piece = word.Slice(start, end - start);
                scoped ReadOnlySpan<char> key = piece;
                if (start > 0)
                {
                    piece.CopyTo(buffer[prefix.Length..]);
                    key = buffer[..(prefix.Length + piece.Length)];
                }
                if (_lookup.TryGetValue(key, out var id))
                {
                    found = id;
                    break;
                }
                end -= char.IsLowSurrogate(word[end - 1]) && end - 2 >= start ? 2 : 1;
            }
            if (found < 0)
            {
                output.RemoveRange(first, output.Count - first);
                output.Add(new Token(_unkId, UnkToken, 0, word.Length));
                return;
            }
            output.Add(new Token(found, _idToToken[found], start, end));
            start = end;
        }
    }

    private static int CodePointCount(ReadOnlySpan<char> s)
    {
        var n = 0;
        foreach (var _ in s.EnumerateRunes())
            n++;
        return n;
    }
}

/// <summary>Whole-word lookup with an unknown token.</summary>
public sealed class WordLevelModel : ITokenizerModel
{
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly string[] _idToToken;

    public WordLevelModel(Dictionary<string, int> vocab, string unkToken)
    {
        _vocab = vocab;
        _lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _idToToken = VocabHelpers.InvertVocab(vocab);
        UnkToken = unkToken;
    }

    public string UnkToken { get; }
    public int VocabSize => _vocab.Count;
    public IReadOnlyDictionary<string, int> GetVocab() => _vocab;
    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;
    public string? IdToToken(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    public void Tokenize(ReadOnlySpan<char> word, List<Token> output)
    {
        if (_lookup.TryGetValue(word, out var id))
            output.Add(new Token(id, _idToToken[id], 0, word.Length));
        else if (_vocab.TryGetValue(UnkToken, out var unk))
            output.Add(new Token(unk, UnkToken, 0, word.Length));
        else
            throw new InvalidOperationException($"WordLevel: '{word.ToString()}' is not in the vocabulary and unk_token '{UnkToken}' is missing");
    }
}
