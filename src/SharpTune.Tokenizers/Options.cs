namespace SharpTune.Tokenizers;

public enum TruncationStrategy { LongestFirst, OnlyFirst, OnlySecond }

public enum Direction { Right, Left }

/// <summary>Truncation of encodings to <see cref="MaxLength"/> tokens (special tokens included), as in tokenizer.json.</summary>
public sealed record TruncationOptions(int MaxLength)
{
    public TruncationStrategy Strategy { get; init; } = TruncationStrategy.LongestFirst;

    /// <summary>Tokens repeated between consecutive overflowing parts.</summary>
    public int Stride { get; init; }

    public Direction Direction { get; init; } = Direction.Right;
}

/// <summary>Padding: to a fixed <see cref="Length"/>, or (when null) to the longest encoding of the batch.</summary>
public sealed record PaddingOptions
{
    public int? Length { get; init; }
    public int? PadToMultipleOf { get; init; }
    public int PadId { get; init; }
    public int PadTypeId { get; init; }
    public string PadToken { get; init; } = "[PAD]";
    public Direction Direction { get; init; } = Direction.Right;
}

/// <summary>The named special tokens of a tokenizer (from tokenizer_config.json / special_tokens_map.json or the vocabulary).</summary>
public sealed record SpecialTokens
{
    public string? Bos { get; init; }
    public string? Eos { get; init; }
    public string? Unk { get; init; }
    public string? Pad { get; init; }
    public string? Cls { get; init; }
    public string? Sep { get; init; }
    public string? Mask { get; init; }

    public IEnumerable<string> All => new[] { Bos, Eos, Unk, Pad, Cls, Sep, Mask }.OfType<string>();
}

/// <summary>
/// How one call encodes: special tokens, truncation and padding. Passed per call so that one tokenizer serves callers
/// with different settings at once; <see cref="Tokenizer.DefaultOptions"/> holds those of the tokenizer.json.
/// </summary>
public sealed record EncodeOptions
{
    /// <summary>No truncation, no padding, special tokens added.</summary>
    public static EncodeOptions Default { get; } = new();

    public bool AddSpecialTokens { get; init; } = true;

    /// <summary>Truncation to a maximum length (special tokens included), with stride and direction; null: none.</summary>
    public TruncationOptions? Truncation { get; init; }

    /// <summary>Padding to a fixed length or to the longest of a batch; null: none.</summary>
    public PaddingOptions? Padding { get; init; }

    /// <summary>Truncation to <paramref name="maxLength"/> tokens, longest first, no padding.</summary>
    public static EncodeOptions Truncated(int maxLength, bool addSpecialTokens = true) =>
        new() { Truncation = new TruncationOptions(maxLength), AddSpecialTokens = addSpecialTokens };
}
