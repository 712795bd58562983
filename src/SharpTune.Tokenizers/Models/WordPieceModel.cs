using System.Text.Json.Nodes;
using SharpTune.Tokenizers.Loading;

namespace SharpTune.Tokenizers.Models;

/// <summary>BERT's greedy longest-match-first WordPiece.</summary>
public sealed class WordPieceModel : ITokenizerModel
{
    public JsonObject ToJson() => Definitions.Typed("WordPiece", ("unk_token", UnkToken), ("continuing_subword_prefix", ContinuingSubwordPrefix), ("max_input_chars_per_word", MaxInputCharsPerWord), ("vocab", Definitions.Vocab(_vocab)));

    private const int WordStart = 0, Continuation = 1; // trie roots

    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly int _unkId;
    // Root 0: every token, matched at the start of a word; root 1: tokens with the continuing prefix, without it,
    // matched inside a word. The longest match is then one walk instead of a lookup per shorter prefix.
    private readonly DoubleArrayTrie _trie;

    public WordPieceModel(Dictionary<string, int> vocab, string unkToken = "[UNK]", string continuingSubwordPrefix = "##",
        int maxInputCharsPerWord = 100)
    {
        _vocab = vocab;
        _idToToken = VocabHelpers.InvertVocab(vocab);
        UnkToken = unkToken;
        ContinuingSubwordPrefix = continuingSubwordPrefix;
        MaxInputCharsPerWord = maxInputCharsPerWord;
        if (!vocab.TryGetValue(unkToken, out _unkId))
            throw new InvalidDataException($"WordPiece unk_token '{unkToken}' is not in the vocabulary");
        _trie = new DoubleArrayTrie([
            vocab.Select(p => (p.Key, p.Value)).ToArray(),
            vocab.Where(p => p.Key.StartsWith(continuingSubwordPrefix, StringComparison.Ordinal))
                .Select(p => (p.Key[continuingSubwordPrefix.Length..], p.Value)).ToArray(),
        ]);
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
        var first = output.Count;
        for (var start = 0; start < word.Length;)
        {
            var (id, end) = _trie.LongestMatch(start == 0 ? WordStart : Continuation, word, start);
            if (id < 0)
            {
                // A piece that matches nothing makes the whole word unknown.
                output.RemoveRange(first, output.Count - first);
                output.Add(new Token(_unkId, UnkToken, 0, word.Length));
                return;
            }
            output.Add(new Token(id, _idToToken[id], start, end));
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
    public JsonObject ToJson() => Definitions.Typed("WordLevel", ("vocab", Definitions.Vocab(_vocab)), ("unk_token", UnkToken));

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
