using System.Text.Json;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Training.Optimization;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>
/// A resumable checkpoint folder <c>checkpoint-{step}/</c>: the model (<c>model.safetensors</c> + <c>config.json</c>,
/// loadable with AutoModel), <c>optimizer.safetensors</c> (moments, master weights, step counts),
/// <c>rng_state.safetensors</c> (libtorch's CPU generator) and <c>trainer_state.json</c> (step, epoch position, best
/// metric, log history, fp16 loss scale; the scheduler is a pure function of the step and the skipped fp16 steps). The folder is assembled under a temporary
/// name and renamed into place, so a killed run never leaves a half-written checkpoint.
/// </summary>
public static class TrainerCheckpoint
{
    public const string Prefix = "checkpoint-";
    public const string StateFileName = "trainer_state.json";
    public const string OptimizerFileName = "optimizer.safetensors";
    public const string RngFileName = "rng_state.safetensors";

    private static readonly JsonSerializerOptions JsonOptions = new(TrainingLogWriter.JsonOptions) { WriteIndented = true };

    public static string Save(string outputDir, PreTrainedModel model, Optimizer optimizer, TrainerState state)
    {
        var final = Path.Combine(outputDir, $"{Prefix}{state.GlobalStep}");
        AtomicDirectory.Write(final, temporary =>
        {
            model.SavePretrained(temporary);
            optimizer.Save(Path.Combine(temporary, OptimizerFileName));
            using (var rng = Generator.Default.get_state())
                SafeTensorsWriter.Save(Path.Combine(temporary, RngFileName), [new("cpu", rng)]);
            File.WriteAllText(Path.Combine(temporary, StateFileName), JsonSerializer.Serialize(state, JsonOptions));
        }, overwrite: true);
        return final;
    }

    public static TrainerState LoadState(string checkpoint)
    {
        var path = Path.Combine(checkpoint, StateFileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{checkpoint} is not a training checkpoint: {StateFileName} is missing", path);
        return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), JsonOptions)
               ?? throw new InvalidDataException($"{path}: empty trainer state");
    }

    /// <summary>Restores model weights, optimizer state and the RNG; returns the trainer state.</summary>
    public static TrainerState Restore(string checkpoint, PreTrainedModel model, Optimizer optimizer)
    {
        var state = LoadState(checkpoint);
        using (var weights = Checkpoint.Open(checkpoint))
        {
            var report = model.LoadWeights(weights);
            if (report.Missing.Count > 0)
                throw new InvalidDataException($"{checkpoint}: checkpoint lacks weights of this model: {string.Join(", ", report.Missing.Take(5))}");
        }
        optimizer.Load(Path.Combine(checkpoint, OptimizerFileName));
        using (var rng = SafeTensorsFile.Open(Path.Combine(checkpoint, RngFileName)))
        using (var cpuState = rng.Load("cpu"))
            Generator.Default.set_state(cpuState);
        return state;
    }

    /// <summary>Loads a checkpoint's weights into <paramref name="model"/>; parameters trained through fp32 master
    /// copies (bf16 runs) take the master values from the optimizer state rather than the rounded model file.</summary>
    public static void LoadWeights(string checkpoint, PreTrainedModel model)
    {
        using (var weights = Checkpoint.Open(checkpoint))
            model.LoadWeights(weights);
        using var optimizerState = SafeTensorsFile.Open(Path.Combine(checkpoint, OptimizerFileName));
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        foreach (var key in optimizerState.Names.Where(k => k.EndsWith("::master", StringComparison.Ordinal)))
            if (parameters.TryGetValue(key[..^"::master".Length], out var parameter))
            {
                using var master = optimizerState.Load(key);
                parameter.copy_(master);
            }
    }

    /// <summary>The newest checkpoint in <paramref name="outputDir"/>, or null.</summary>
    public static string? Latest(string outputDir) =>
        !Directory.Exists(outputDir) ? null
            : Directory.GetDirectories(outputDir, Prefix + "*")
                .Select(d => (Dir: d, Step: long.TryParse(Path.GetFileName(d)[Prefix.Length..], out var s) ? s : -1))
                .Where(d => d.Step >= 0 && File.Exists(Path.Combine(d.Dir, StateFileName)))
                .OrderByDescending(d => d.Step).Select(d => d.Dir).FirstOrDefault();

    /// <summary>Deletes the oldest checkpoints beyond <paramref name="limit"/>, never the best one.</summary>
    public static void Rotate(string outputDir, int limit, string? keep)
    {
        var all = Directory.GetDirectories(outputDir, Prefix + "*")
            .Select(d => (Dir: d, Step: long.TryParse(Path.GetFileName(d)[Prefix.Length..], out var s) ? s : -1))
            .Where(d => d.Step >= 0).OrderBy(d => d.Step).ToList();
        var keepFull = keep is null ? null : Path.GetFullPath(keep);
        var removable = all.Where(d => Path.GetFullPath(d.Dir) != keepFull).ToList();
        var excess = all.Count - Math.Max(limit, keepFull is null ? 0 : 1);
        foreach (var (dir, _) in removable.Take(Math.Max(0, excess)))
            Directory.Delete(dir, recursive: true);
    }
}
