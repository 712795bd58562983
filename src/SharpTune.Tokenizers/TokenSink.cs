using SharpTune.Tokenizers.Models;
using SharpTune.Tokenizers.Pipeline;

namespace SharpTune.Tokenizers;

/// <summary>
/// Where the encode pipeline puts the tokens of one text. Implemented by structs and used as a generic argument, so the
/// JIT specializes the pipeline per sink: the ids-only sink never computes offsets or touches token strings.
/// </summary>
internal interface ITokenSink
{
    int Count { get; }

    /// <summary>A token whose original offsets are known (added tokens found in the raw text).</summary>
    void Add(int id, string token, (int Start, int End) offsets, int word, int sequence);

    /// <summary>The model's tokens for <paramref name="text"/>, the text of word <paramref name="word"/>, which starts at char
    /// <paramref name="shift"/> of <paramref name="piece"/>; <paramref name="scratch"/> is a reusable token buffer.</summary>
    void AddWord(ITokenizerModel model, ReadOnlySpan<char> text, List<Token> scratch, NormalizedString piece, int shift, int word,
        int sequence);
}

/// <summary>Full encodings: token strings, offsets, word and sequence ids.</summary>
internal readonly struct EncodingSink(TokenEncoding encoding) : ITokenSink
{
    public int Count => encoding.Length;

    public void Add(int id, string token, (int Start, int End) offsets, int word, int sequence) =>
        encoding.Add(id, token, sequence, offsets, word, sequence, special: false);

    public void AddWord(ITokenizerModel model, ReadOnlySpan<char> text, List<Token> scratch, NormalizedString piece, int shift, int word,
        int sequence)
    {
        scratch.Clear();
        model.Tokenize(text, scratch);
        foreach (var t in scratch)
            encoding.Add(t.Id, t.Value, sequence, piece.OriginalRange(shift + t.Start, shift + t.End), word, sequence, special: false);
    }
}

/// <summary>Ids only.</summary>
internal readonly struct IdSink(List<int> ids) : ITokenSink
{
    public int Count => ids.Count;

    public void Add(int id, string token, (int Start, int End) offsets, int word, int sequence) => ids.Add(id);

    public void AddWord(ITokenizerModel model, ReadOnlySpan<char> text, List<Token> scratch, NormalizedString piece, int shift, int word,
        int sequence)
    {
        if (model is IIdTokenizerModel idModel)
        {
            idModel.TokenizeToIds(text, scratch, ids);
            return;
        }
        scratch.Clear();
        model.Tokenize(text, scratch);
        foreach (var t in scratch)
            ids.Add(t.Id);
    }
}
