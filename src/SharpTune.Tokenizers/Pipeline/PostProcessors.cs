using System.Text.Json.Nodes;
using SharpTune.Tokenizers.Loading;

namespace SharpTune.Tokenizers.Pipeline;

/// <summary>Adds special tokens and type ids around the encoded sequence(s) (Hugging Face "post_processor").</summary>
public interface IPostProcessor
{
    /// <summary>How many special tokens <see cref="Process"/> adds (truncation keeps room for them).</summary>
    int AddedTokens(bool isPair);

    /// <summary>Processes one or two encodings (which it may change in place); returns the list to concatenate.</summary>
    List<TokenEncoding> Process(List<TokenEncoding> encodings, bool addSpecialTokens);

    /// <summary>This post-processor as a tokenizer.json "post_processor" object.</summary>
    JsonObject ToJson();
}

/// <summary>One element of a template: a special token or one of the input sequences (A = 0, B = 1).</summary>
public sealed record TemplatePiece(string? SpecialTokenId, int Sequence, int TypeId);

/// <summary>A special token of a template: its name and the ids/tokens it expands to.</summary>
public sealed record TemplateSpecialToken(string Id, int[] Ids, string[] Tokens);

public sealed class TemplateProcessor(IReadOnlyList<TemplatePiece> single, IReadOnlyList<TemplatePiece> pair,
    IReadOnlyDictionary<string, TemplateSpecialToken> specialTokens) : IPostProcessor
{
    public JsonObject ToJson() => Definitions.Template(this);

    /// <summary>BERT's template: <c>[CLS] A [SEP]</c> and <c>[CLS] A [SEP] B [SEP]</c> (B with type id 1).</summary>
    public static TemplateProcessor Bert(string cls, int clsId, string sep, int sepId) => new(
        [new(cls, -1, 0), new(null, 0, 0), new(sep, -1, 0)],
        [new(cls, -1, 0), new(null, 0, 0), new(sep, -1, 0), new(null, 1, 1), new(sep, -1, 1)],
        new Dictionary<string, TemplateSpecialToken> { [cls] = new(cls, [clsId], [cls]), [sep] = new(sep, [sepId], [sep]) });

    public IReadOnlyList<TemplatePiece> Single { get; } = single;
    public IReadOnlyList<TemplatePiece> Pair { get; } = pair;
    public IReadOnlyDictionary<string, TemplateSpecialToken> SpecialTokens { get; } = specialTokens;

    public int AddedTokens(bool isPair) =>
        (isPair ? Pair : Single).Where(p => p.SpecialTokenId is not null).Sum(p => SpecialTokens[p.SpecialTokenId!].Ids.Length);

    // A single text whose template holds $A once is processed in place: no copy of its tokens.
    private readonly bool _singleInPlace = single.Count(p => p.SpecialTokenId is null) == 1 && single.Any(p => p.SpecialTokenId is null && p.Sequence == 0);

    public List<TokenEncoding> Process(List<TokenEncoding> encodings, bool addSpecialTokens)
    {
        if (encodings.Count == 1 && _singleInPlace)
        {
            var encoding = encodings[0];
            var body = encoding.Length;
            var before = 0;
            var seenSequence = false;
            foreach (var piece in Single)
            {
                if (piece.SpecialTokenId is not { } specialName)
                {
                    encoding.SetTypeIds(before, before + body, piece.TypeId);
                    seenSequence = true;
                }
                else if (addSpecialTokens)
                {
                    var special = SpecialTokens[specialName];
                    for (var i = 0; i < special.Ids.Length; i++)
                        encoding.Insert(seenSequence ? encoding.Length : before++, special.Ids[i], special.Tokens[i], piece.TypeId);
                }
            }
            return encodings;
        }
        var template = encodings.Count > 1 ? Pair : Single;
        var result = new TokenEncoding(encodings.Sum(e => e.Length) + 4);
        foreach (var piece in template)
        {
            if (piece.SpecialTokenId is { } name)
            {
                if (!addSpecialTokens)
                    continue;
                var special = SpecialTokens[name];
                for (var i = 0; i < special.Ids.Length; i++)
                    result.Add(special.Ids[i], special.Tokens[i], piece.TypeId, (0, 0), -1, -1, special: true);
            }
            else if (piece.Sequence < encodings.Count)
                result.Append(encodings[piece.Sequence], piece.TypeId);
        }
        return [result];
    }
}

/// <summary>[CLS] A [SEP] (B [SEP]) with type ids 0 then 1.</summary>
public sealed class BertProcessor((string Token, int Id) sep, (string Token, int Id) cls) : IPostProcessor
{
    public JsonObject ToJson() => Definitions.Typed("BertProcessing", ("sep", new JsonArray(Sep.Token, Sep.Id)), ("cls", new JsonArray(Cls.Token, Cls.Id)));

    public (string Token, int Id) Sep { get; } = sep;
    public (string Token, int Id) Cls { get; } = cls;

    public int AddedTokens(bool isPair) => isPair ? 3 : 2;

    public List<TokenEncoding> Process(List<TokenEncoding> encodings, bool addSpecialTokens)
    {
        if (!addSpecialTokens)
            return encodings;
        var result = new TokenEncoding(encodings.Sum(e => e.Length) + AddedTokens(encodings.Count > 1));
        result.Add(Cls.Id, Cls.Token, 0, (0, 0), -1, -1, special: true);
        result.Append(encodings[0], 0);
        result.Add(Sep.Id, Sep.Token, 0, (0, 0), -1, -1, special: true);
        if (encodings.Count > 1)
        {
            result.Append(encodings[1], 1);
            result.Add(Sep.Id, Sep.Token, 1, (0, 0), -1, -1, special: true);
        }
        return [result];
    }
}

/// <summary>&lt;s&gt; A &lt;/s&gt; (&lt;/s&gt; B &lt;/s&gt;), type ids 0, with byte-level offset trimming.</summary>
public sealed class RobertaProcessor((string Token, int Id) sep, (string Token, int Id) cls, bool trimOffsets, bool addPrefixSpace)
    : IPostProcessor
{
    public JsonObject ToJson() => Definitions.Typed("RobertaProcessing", ("sep", new JsonArray(Sep.Token, Sep.Id)), ("cls", new JsonArray(Cls.Token, Cls.Id)), ("trim_offsets", _trim.TrimOffsets), ("add_prefix_space", _trim.AddPrefixSpace));

    private readonly ByteLevelProcessor _trim = new(trimOffsets, addPrefixSpace);

    public (string Token, int Id) Sep { get; } = sep;
    public (string Token, int Id) Cls { get; } = cls;

    public int AddedTokens(bool isPair) => isPair ? 4 : 2;

    public List<TokenEncoding> Process(List<TokenEncoding> encodings, bool addSpecialTokens)
    {
        encodings = _trim.Process(encodings, addSpecialTokens);
        if (!addSpecialTokens)
            return encodings;
        var result = new TokenEncoding(encodings.Sum(e => e.Length) + AddedTokens(encodings.Count > 1));
        result.Add(Cls.Id, Cls.Token, 0, (0, 0), -1, -1, special: true);
        result.Append(encodings[0], 0);
        result.Add(Sep.Id, Sep.Token, 0, (0, 0), -1, -1, special: true);
        if (encodings.Count > 1)
        {
            result.Add(Sep.Id, Sep.Token, 0, (0, 0), -1, -1, special: true);
            result.Append(encodings[1], 0);
            result.Add(Sep.Id, Sep.Token, 0, (0, 0), -1, -1, special: true);
        }
        return [result];
    }
}

/// <summary>Byte-level post-processing: optionally moves offsets past the spaces that tokens carry (Ġ).</summary>
public sealed class ByteLevelProcessor(bool trimOffsets, bool addPrefixSpace) : IPostProcessor
{
    public JsonObject ToJson() => Definitions.Typed("ByteLevel", ("add_prefix_space", AddPrefixSpace), ("trim_offsets", TrimOffsets), ("use_regex", true));

    public bool TrimOffsets { get; } = trimOffsets;
    public bool AddPrefixSpace { get; } = addPrefixSpace;

    public int AddedTokens(bool isPair) => 0;

    public List<TokenEncoding> Process(List<TokenEncoding> encodings, bool addSpecialTokens)
    {
        if (!TrimOffsets)
            return encodings;
        foreach (var encoding in encodings)
            Trim(encoding);
        return encodings;
    }

    private void Trim(TokenEncoding encoding)
    {
        var space = ByteLevelAlphabet.ByteToChar[' '];
        for (var i = 0; i < encoding.Length; i++)
        {
            var token = encoding.Entries[i].Token;
            var (start, end) = encoding.Entries[i].Offsets;
            var leading = 0;
            while (leading < token.Length && (token[leading] == space || char.IsWhiteSpace(token[leading])))
                leading++;
            var trailing = 0;
            while (trailing < token.Length - leading && (token[^(trailing + 1)] == space || char.IsWhiteSpace(token[^(trailing + 1)])))
                trailing++;
            if (leading > 0 && !(AddPrefixSpace && start == 0))
                start = Math.Min(start + leading, end);
            if (trailing > 0 && end >= trailing)
                end = Math.Max(end - trailing, start);
            encoding.SetOffsets(i, (start, end));
        }
        foreach (var overflow in encoding.Overflowing)
            Trim(overflow);
    }
}

public sealed class SequenceProcessor(IReadOnlyList<IPostProcessor> processors) : IPostProcessor
{
    public JsonObject ToJson() => Definitions.Typed("Sequence", ("processors", Definitions.Array(Processors.Select(p => p.ToJson()))));

    public IReadOnlyList<IPostProcessor> Processors { get; } = processors;

    public int AddedTokens(bool isPair) => Processors.Sum(p => p.AddedTokens(isPair));

    public List<TokenEncoding> Process(List<TokenEncoding> encodings, bool addSpecialTokens)
    {
        foreach (var processor in Processors)
            encodings = processor.Process(encodings, addSpecialTokens);
        return encodings;
    }
}
