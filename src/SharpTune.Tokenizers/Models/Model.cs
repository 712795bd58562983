using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using SharpTune.Tokenizers.Loading;

namespace SharpTune.Tokenizers.Models;

/// <summary>One token produced by a model for a word: its id, its string and its char range inside the word.</summary>
public readonly record struct Token(int Id, string Value, int Start, int End);

/// <summary>Turns one pre-tokenized word into tokens (Hugging Face "model": BPE, WordPiece, Unigram, WordLevel).</summary>
public interface ITokenizerModel
{
    /// <summary>Appends the tokens of <paramref name="word"/>; their ranges are char positions inside it.</summary>
    void Tokenize(ReadOnlySpan<char> word, List<Token> output);
    int? TokenToId(string token);
    string? IdToToken(int id);
    int VocabSize { get; }
    IReadOnlyDictionary<string, int> GetVocab();

    /// <summary>This model as a tokenizer.json "model" object.</summary>
    JsonObject ToJson();
}

/// <summary>A model that can append just the ids of a word, without building its tokens when they are cached.</summary>
internal interface IIdTokenizerModel
{
    /// <summary>The ids of <see cref="ITokenizerModel.Tokenize"/>(<paramref name="word"/>), appended to <paramref name="ids"/>;
    /// <paramref name="scratch"/> is a reusable token buffer.</summary>
    void TokenizeToIds(ReadOnlySpan<char> word, List<Token> scratch, List<int> ids);
}

/// <summary>Bounded, thread-safe word → tokens cache: words repeat a lot (Zipf), so most lookups hit.</summary>
internal sealed class WordCache(int capacity = 200_000)
{
    private readonly ConcurrentDictionary<string, Token[]>.AlternateLookup<ReadOnlySpan<char>> _entries =
        new ConcurrentDictionary<string, Token[]>(StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
    private int _count; // ConcurrentDictionary.Count takes every lock: keep our own approximate count

    // Looked up by span so that a hit (the common case) allocates nothing.
    public bool TryGet(ReadOnlySpan<char> word, out Token[] tokens) => _entries.TryGetValue(word, out tokens!);

    public void Add(ReadOnlySpan<char> word, Token[] tokens)
    {
        if (_count < capacity && word.Length < 256 && _entries.TryAdd(word, tokens))
            Interlocked.Increment(ref _count);
    }
}

internal static class VocabHelpers
{
    /// <summary>Token → id for a list of tokens where the id is the position (the first of duplicates wins).</summary>
    public static Dictionary<string, int> FromList(IReadOnlyList<string> tokens)
    {
        var vocab = new Dictionary<string, int>(tokens.Count, StringComparer.Ordinal);
        for (var i = 0; i < tokens.Count; i++)
            vocab.TryAdd(tokens[i], i);
        return vocab;
    }

    public static string[] InvertVocab(IReadOnlyDictionary<string, int> vocab)
    {
        // Ids index this table: negative ones, or ones far beyond the vocabulary's size (a 1e9 id would take gigabytes), are refused.
        var max = vocab.Count == 0 ? -1 : vocab.Values.Max();
        if (vocab.Count > 0 && (vocab.Values.Min() < 0 || max >= 2L * vocab.Count + 256))
            throw new ArgumentException($"vocabulary ids must be in [0, {2L * vocab.Count + 256}) for {vocab.Count} tokens (got {vocab.Values.Min()}..{max})");
        var tokens = new string[max + 1];
        foreach (var (token, id) in vocab)
            tokens[id] = token;
        return tokens;
    }

    /// <summary>SentencePiece / Hugging Face byte-fallback piece name, e.g. &lt;0x0A&gt;.</summary>
    public static string ByteToken(byte b) => ByteTokens[b];

    private static readonly string[] ByteTokens = Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>").ToArray();
}
