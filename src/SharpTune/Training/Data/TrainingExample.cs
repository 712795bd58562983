namespace SharpTune.Training.Data;

/// <summary>One tokenized example. Exactly one kind of label is used per data set: <see cref="Label"/> (single-label
/// class id), <see cref="Targets"/> (multi-label 0/1 or regression values) or <see cref="TokenLabels"/> (language
/// modelling; -100 is ignored). Unlabelled examples (prediction) leave all three null.</summary>
public sealed record TrainingExample(long[] InputIds)
{
    public long[]? TokenTypeIds { get; init; }
    public long? Label { get; init; }
    public float[]? Targets { get; init; }
    public long[]? TokenLabels { get; init; }

    public int Length => InputIds.Length;
}
