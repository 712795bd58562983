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
