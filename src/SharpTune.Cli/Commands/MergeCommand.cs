using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Models;
using SharpTune.Peft;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune merge</c>: folds a LoRA adapter into its base model and saves the result.</summary>
public static class MergeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Base model directory the adapter was trained on.", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors).", Required = true };
        var output = new Option<string>("--output") { Description = "Directory to create (must not exist or be empty).", Required = true };
        var command = new Command("merge",
            "Merge a LoRA adapter into the base weights (peft's merge_and_unload) and save a plain model with the base's " +
            "tokenizer and other files; a quantized base is re-quantized after merging. The output appears complete or not at all.")
        {
            model, adapter, output,
        };
        command.SetAction(parseResult =>
        {
            GlobalOptions.Apply(parseResult);
            var source = HubModels.Resolve(parseResult.GetValue(model)!);
            var adapterDirectory = HubModels.Resolve(parseResult.GetValue(adapter)!);
            var destination = parseResult.GetValue(output)!;
            if (Directory.Exists(destination) && Directory.EnumerateFileSystemEntries(destination).Any())
                throw new UsageException($"output directory {destination} already exists and is not empty");
            using var network = AutoModel.FromPretrained(source);
            var peft = PeftModel.FromPretrained(network, adapterDirectory);
            var layers = peft.LoraLayers.Count();
            var merged = peft.MergeAndUnload();
            ModelConversion.Save(merged, source, destination);
            Console.WriteLine($"merged {adapterDirectory} into {layers} layers of {source} → {destination}");
            return ExitCodes.Success;
        });
        return command;
    }
}
