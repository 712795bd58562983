using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Engine;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Peft;
using static TorchSharp.torch;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune forward</c>: runs a model on token ids from a safetensors file and writes its outputs.</summary>
public static class ForwardCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face model directory (config.json + safetensors).", Required = true };
        var input = new Option<string>("--input")
        {
            Description = "safetensors file with input_ids (int64 [B, T]) and optionally attention_mask and token_type_ids ([B, T]).",
            Required = true,
        };
        var output = new Option<string>("--output")
        {
            Description = "safetensors file to write: float32 logits, last_hidden_state and hidden_states_first (the embeddings output), where the model has them.",
            Required = true,
        };
        var adapter = new Option<string?>("--adapter") { Description = "LoRA adapter directory (adapter_config.json + adapter_model.safetensors) to apply." };
        var command = new Command("forward",
            "Run a model on a batch of token ids and save its outputs (logits, final and embedding hidden states) as float32 " +
            "safetensors, e.g. to compare with transformers.")
        {
            model, input, output, adapter,
        };
        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var modelDirectory = HubModels.Resolve(parseResult.GetValue(model)!);
            var inputPath = parseResult.GetValue(input)!;
            var outputPath = parseResult.GetValue(output)!;
            if (!File.Exists(inputPath))
                throw new FileNotFoundException($"input file not found: {inputPath}", inputPath);

            using var scope = NewDisposeScope();
            var inputs = ReadInputs(inputPath, engine.Device);
            using var network = AutoModel.FromPretrained(modelDirectory, out var report, device: engine.Device, dtype: engine.DType);
            if (report.Missing.Count > 0 || report.Unexpected.Count > 0)
                Console.WriteLine($"loading {modelDirectory}: {report}");
            if (HubModels.ResolveOptional(parseResult.GetValue(adapter)) is { } adapterDirectory)
                PeftModel.FromPretrained(network, adapterDirectory);
            var vocabulary = network.Config.Get("vocab_size", long.MaxValue);
            if (inputs.InputIds.NumberOfElements > 0 && (inputs.InputIds.min().item<long>() < 0 || inputs.InputIds.max().item<long>() >= vocabulary))
                throw new InvalidDataException($"{inputPath}: input_ids hold {(inputs.InputIds.min().item<long>() < 0 ? inputs.InputIds.min() : inputs.InputIds.max()).item<long>()}, " +
                                               $"outside the model's vocabulary (ids 0 to {vocabulary - 1})");
            using var noGrad = no_grad();
            using var result = network.Forward(inputs);

            var tensors = new List<KeyValuePair<string, Tensor>>();
            if (result.Logits is not null)
                tensors.Add(new("logits", result.Logits.to(ScalarType.Float32)));
            tensors.Add(new("last_hidden_state", result.LastHiddenState.to(ScalarType.Float32)));
            if (result.HiddenStates is { Count: > 0 } states)
                tensors.Add(new("hidden_states_first", states[0].to(ScalarType.Float32)));
            SafeTensorsWriter.Save(outputPath, tensors, new Dictionary<string, string> { ["format"] = "pt" });

            Console.WriteLine($"{network.GetType().Name} on {engine.Device.type.ToString().ToLowerInvariant()} ({TorchRuntime.DTypeName(engine.DType)}): " +
                              string.Join(", ", tensors.Select(t => $"{t.Key} [{string.Join(", ", t.Value.shape)}]")) + $" → {outputPath}");
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>Reads and checks input_ids/attention_mask/token_type_ids: integer [B, T] tensors of one shape.</summary>
    private static ModelInputs ReadInputs(string path, Device device)
    {
        using var file = SafeTensorsFile.Open(path);
        if (!file.Contains("input_ids"))
            throw new InvalidDataException($"{path}: no 'input_ids' tensor (found: {string.Join(", ", file.Names)})");
        var ids = ReadIds(file, "input_ids")!;
        if (ids.dim() != 2)
            throw new InvalidDataException($"{path}: input_ids must be [batch, tokens], got [{string.Join(", ", ids.shape)}]");
        return new ModelInputs(ids.to(device))
        {
            AttentionMask = ReadIds(file, "attention_mask", ids.shape)?.to(device),
            TokenTypeIds = ReadIds(file, "token_type_ids", ids.shape)?.to(device),
            OutputHiddenStates = true,
        };
    }

    private static Tensor? ReadIds(SafeTensorsFile file, string name, long[]? shape = null)
    {
        if (!file.Contains(name))
            return null;
        var tensor = file.Load(name);
        if (tensor.is_floating_point() || tensor.is_complex())
            throw new InvalidDataException($"{file.Path}: {name} must hold integers (int64), got {tensor.dtype}");
        if (shape is not null && !tensor.shape.SequenceEqual(shape))
            throw new InvalidDataException($"{file.Path}: {name} has shape [{string.Join(", ", tensor.shape)}], input_ids [{string.Join(", ", shape)}]");
        return tensor.to(ScalarType.Int64);
    }
}
