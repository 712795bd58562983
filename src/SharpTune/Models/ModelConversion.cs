using SharpTune.IO;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>Re-saves a model directory with its weights in another dtype (e.g. bf16 to halve it), keeping the
/// tokenizer and every other non-weight file, so the result is a complete Hugging Face model directory.</summary>
public static class ModelConversion
{
    /// <summary>Files the conversion writes itself (weights and config); everything else is copied along.</summary>
    private static bool IsWeightOrConfig(string fileName) =>
        fileName == PretrainedConfig.FileName
        || (fileName.StartsWith("model", StringComparison.Ordinal) && fileName.Contains(".safetensors", StringComparison.Ordinal))
        || fileName.StartsWith("pytorch_model", StringComparison.Ordinal);

    /// <summary>Loads <paramref name="source"/>, writes it to <paramref name="destination"/> with floating weights in
    /// <paramref name="dtype"/>, atomically (no partial directory is ever left). Returns what loading reported.</summary>
    public static LoadReport Convert(string source, string destination, ScalarType dtype, long maxShardBytes = 5L * 1024 * 1024 * 1024, bool overwrite = false)
    {
        if (Path.GetFullPath(source).TrimEnd('/') == Path.GetFullPath(destination).TrimEnd('/'))
            throw new ArgumentException($"convert: the output directory must differ from the model directory ({source})");
        using var model = AutoModel.FromPretrained(source, out var report);
        if (report.Missing.Count > 0)
            throw new InvalidDataException($"{source}: the checkpoint lacks weights the model needs ({string.Join(", ", report.Missing.Take(5))}); refusing to save freshly initialised weights as a conversion");
        Save(model, source, destination, dtype, maxShardBytes, overwrite);
        return report;
    }

    /// <summary>Saves <paramref name="model"/> (loaded from <paramref name="source"/> and possibly transformed: converted,
    /// quantized, merged) to <paramref name="destination"/> with the source's tokenizer and other non-weight files,
    /// atomically.</summary>
    public static void Save(PreTrainedModel model, string source, string destination, ScalarType? dtype = null,
        long maxShardBytes = 5L * 1024 * 1024 * 1024, bool overwrite = false)
    {
        if (Path.GetFullPath(source).TrimEnd('/') == Path.GetFullPath(destination).TrimEnd('/'))
            throw new ArgumentException($"the output directory must differ from the model directory ({source})");
        AtomicDirectory.Write(destination, temporary =>
        {
            model.SavePretrained(temporary, dtype, maxShardBytes);
            foreach (var file in Directory.EnumerateFiles(source))
                if (!IsWeightOrConfig(Path.GetFileName(file)))
                {
                    var copy = Path.Combine(temporary, Path.GetFileName(file));
                    File.Copy(file, copy);
                    File.SetAttributes(copy, FileAttributes.Normal); // a read-only source must not make the copy read-only
                }
        }, overwrite);
    }
}
