using SharpTune.Hub;
using SharpTune.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>The head a model is built with.</summary>
public enum ModelTask
{
    Base,
    SequenceClassification,
    MaskedLM,
    CausalLM,
}

/// <summary>One loadable class: the transformers architecture name it answers to, its model_type and head.</summary>
public sealed record ModelRegistration(string Architecture, string ModelType, ModelTask Task, Func<PretrainedConfig, PreTrainedModel> Create);

/// <summary>
/// Builds the right model class from <c>config.json</c> (like transformers' AutoModel*): for a task, the saved class
/// (<c>architectures</c>) when it has that head, else <c>model_type</c>'s class for the task; with no task, the saved
/// class; then loads the weights.
/// </summary>
public static class AutoModel
{
    public static IReadOnlyList<ModelRegistration> Registrations => ModelRegistry.All;

    public static PreTrainedModel FromConfig(PretrainedConfig config, ModelTask? task = null)
    {
        Engine.LibTorch.EnsureLoaded();
        var registration = Resolve(config, task);
        ConfigValidation.Validate(config);
        return registration.Create(config);
    }

    /// <summary>Loads a Hugging Face model directory, or a Hub id (<c>org/name[@revision]</c>) from the Hugging Face cache
    /// or the Hub (<see cref="PretrainedPath"/>). Weights the checkpoint lacks (a new head) are initialised
    /// as transformers does and listed in <c>report</c>.</summary>
    public static PreTrainedModel FromPretrained(string directory, ModelTask? task = null, Device? device = null, ScalarType? dtype = null,
        CancellationToken cancellationToken = default) =>
        FromPretrained(directory, out _, task, device, dtype, cancellationToken);

    /// <summary>As above; <paramref name="cancellationToken"/> cancels a Hub download and is checked before the model is
    /// built and after its weights load.</summary>
    public static PreTrainedModel FromPretrained(string directory, out LoadReport report, ModelTask? task = null, Device? device = null, ScalarType? dtype = null,
        CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Engine.LibTorch.EnsureLoaded();
        directory = PretrainedPath.Resolve(directory, cancellationToken: cancellationToken);
        var config = PretrainedConfig.FromDirectory(directory);
        var registration = Resolve(config, task);
        ConfigValidation.Validate(config);
        using var checkpoint = Checkpoint.Open(directory);
        var model = registration.Create(config);
        try
        {
            if (Quantization.Quantizer.IsQuantized(config))
                Quantization.Quantizer.LoadQuantizedLayers(model, checkpoint);
            report = model.LoadWeights(checkpoint);
            cancellationToken.ThrowIfCancellationRequested();
            if (dtype is { } target)
                model.to(target);
            if (device is not null)
                model.to(device);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static ModelRegistration Resolve(PretrainedConfig config, ModelTask? task)
    {
        var where = config.SourcePath ?? PretrainedConfig.FileName;
        if (task is { } wanted)
        {
            // The saved class wins when it has the head asked for (a pooling-head classifier, not the family's own head).
            foreach (var architecture in config.Architectures)
                if (ModelRegistry.All.FirstOrDefault(r => r.Architecture == architecture && r.Task == wanted) is { } saved)
                    return saved;
            var byType = ModelRegistry.All.FirstOrDefault(r => r.ModelType == config.ModelType && r.Task == wanted);
            if (byType is not null)
                return byType;
            if (ModelRegistry.All.Any(r => r.ModelType == config.ModelType))
                throw new NotSupportedException($"{where}: model_type '{config.ModelType}' has no {wanted} head in SharpTune; it has: " +
                                                string.Join(", ", ModelRegistry.All.Where(r => r.ModelType == config.ModelType).Select(r => r.Task)));
        }
        else
        {
            foreach (var architecture in config.Architectures)
                if (ModelRegistry.All.FirstOrDefault(r => r.Architecture == architecture) is { } byArchitecture)
                    return byArchitecture;
            if (ModelRegistry.All.FirstOrDefault(r => r.ModelType == config.ModelType && r.Task == ModelTask.Base) is { } baseModel)
                return baseModel;
        }
        throw new NotSupportedException(
            $"{where}: unsupported model (model_type '{config.ModelType}', architectures [{string.Join(", ", config.Architectures)}]). Supported: " +
            string.Join(", ", ModelRegistry.All.Select(r => r.Architecture)));
    }
}
