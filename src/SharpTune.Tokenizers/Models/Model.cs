using System.Collections.Concurrent;

namespace SharpTune.Tokenizers.Models;

/// <summary>One token produced by a model for a word: its id, its string and its char range inside the word.</summary>
public readonly record struct Token(int Id, string Value, int Start, int End);

/// <summary>Turns one pre-tokenized word into tokens (Hugging Face "model": BPE, WordPiece, Unigram, WordLevel).</summary>
public interface ITokenizerModel
{
    void Tokenize(string word, List<Token> output);
    int? TokenToId(string token);
    string? IdToToken(int id);
    int VocabSize { get; }
    IReadOnlyDictionary<string, int> GetVocab();
}

/// <summary>Bounded, thread-safe word → tokens cache: words repeat a lot (Zipf), so most lookups hit.</summary>
internal sealed class WordCache(int capacity = 200_000)
{
    private readonly ConcurrentDictionary<string, Token[]> _entries = new();

    public bool TryGet(string word, out Token[] tokens) => _entries.TryGetValue(word, out tokens!);

    public void Add(string word, Token[] tokens)
    {
        if (_entries.Count < capacity && word.Length < 256)
            _entries.TryAdd(word, tokens);
    }
}

internal static class VocabHelpers
{
    public static string[] InvertVocab(IReadOnlyDictionary<string, int> vocab)
    {
        var size = vocab.Count == 0 ? 0 : vocab.Values.Max() + 1;
        var tokens = new string[size];
        foreach (var (token, id) in vocab)
            tokens[id] = token;
        return tokens;
    }

    /// <summary>SentencePiece / Hugging Face byte-fallback piece name, e.g. &lt;0x0A&gt;.</summary>
    public static string ByteToken(byte b) => ByteTokens[b];

    private static readonly string[] ByteTokens = Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>").ToArray();
}
