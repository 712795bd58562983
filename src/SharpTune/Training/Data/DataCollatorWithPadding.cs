using SharpTune.Models;
using static TorchSharp.torch;

namespace SharpTune.Training.Data;

/// <summary>A batch ready for <see cref="PreTrainedModel.Forward"/>; owns its tensors.</summary>
public sealed class Batch : IDisposable
{
    public required ModelInputs Inputs { get; init; }

    /// <summary>Number of examples.</summary>
    public required int Size { get; init; }

    public void Dispose()
    {
        Inputs.InputIds.Dispose();
        Inputs.AttentionMask?.Dispose();
        Inputs.TokenTypeIds?.Dispose();
        Inputs.Labels?.Dispose();
    }
}

/// <summary>Turns a list of examples into one batch.</summary>
public interface IDataCollator
{
    Batch Collate(IReadOnlyList<TrainingExample> examples, Device device);
}

/// <summary>Dynamic padding, as transformers' DataCollatorWithPadding: each batch is right-padded to its own longest
/// example (optionally rounded up to a multiple, which helps tensor cores), with an attention mask.</summary>
public class DataCollatorWithPadding(long padTokenId = 0, int padToMultipleOf = 1) : IDataCollator
{
    public const long IgnoreIndex = -100;

    public long PadTokenId { get; } = padTokenId;
    public int PadToMultipleOf { get; } = padToMultipleOf >= 1 ? padToMultipleOf : throw new ArgumentException("padToMultipleOf must be >= 1");

    public virtual Batch Collate(IReadOnlyList<TrainingExample> examples, Device device)
    {
        if (examples.Count == 0)
            throw new ArgumentException("cannot collate an empty batch");
        var longest = examples.Max(e => e.Length);
        var width = (longest + PadToMultipleOf - 1) / PadToMultipleOf * PadToMultipleOf;
        var count = examples.Count;
        var ids = new long[count * width];
        var mask = new long[count * width];
        var types = examples.Any(e => e.TokenTypeIds is not null) ? new long[count * width] : null;
        Array.Fill(ids, PadTokenId);
        for (var row = 0; row < count; row++)
        {
            var example = examples[row];
            example.InputIds.CopyTo(ids, row * width);
            Array.Fill(mask, 1L, row * width, example.Length);
            example.TokenTypeIds?.CopyTo(types!, row * width);
        }
        return new Batch
        {
            Size = count,
            Inputs = new ModelInputs(tensor(ids, [count, width], device: device))
            {
                AttentionMask = tensor(mask, [count, width], device: device),
                TokenTypeIds = types is null ? null : tensor(types, [count, width], device: device),
                Labels = CollateLabels(examples, width, device),
            },
        };
    }

    /// <summary>Class ids [B] (int64), targets [B, K] (float32), or token labels [B, T] padded with -100.</summary>
    protected static Tensor? CollateLabels(IReadOnlyList<TrainingExample> examples, int width, Device device)
    {
        var first = examples[0];
        if (first.Label is not null)
            return tensor(examples.Select(e => e.Label ?? throw new ArgumentException("a batch mixes labelled and unlabelled examples")).ToArray(), device: device);
        if (first.Targets is { } targets)
        {
            var flat = examples.SelectMany(e => e.Targets is { } t && t.Length == targets.Length ? t
                : throw new ArgumentException($"every example needs {targets.Length} targets")).ToArray();
            return tensor(flat, [examples.Count, targets.Length], device: device);
        }
        if (first.TokenLabels is not null)
        {
            var labels = new long[examples.Count * width];
            Array.Fill(labels, IgnoreIndex);
            for (var row = 0; row < examples.Count; row++)
                (examples[row].TokenLabels ?? throw new ArgumentException("a batch mixes labelled and unlabelled examples")).CopyTo(labels, row * width);
            return tensor(labels, [examples.Count, width], device: device);
        }
        return null;
    }
}
