using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Engine;
using SharpTune.Models;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune convert</c>: re-saves a model directory with its weights in another dtype.</summary>
public static class ConvertCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face model directory to convert (with --from llama2c: the llama2.c .bin checkpoint).", Required = true };
        var output = new Option<string>("--output") { Description = "Directory to create (must not exist or be empty unless --force).", Required = true };
        var shardMegabytes = new Option<long>("--max-shard-mb")
        {
            Description = "Split weights into shards of at most this many MB (transformers' layout with an index file).",
            DefaultValueFactory = _ => 5120,
        };
        var force = new Option<bool>("--force") { Description = "Replace an existing output directory." };
        var command = new Command("convert",
            "Save a model with its weights in the --dtype given (e.g. --dtype bfloat16 halves its size), copying the " +
            "tokenizer and other files along. The output appears complete or not at all.")
        {
            model, output, shardMegabytes, force,
        };
        Llama2cConversion.AddTo(command);
        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var source = parseResult.GetValue(model)!;
            var destination = parseResult.GetValue(output)!;
            var megabytes = parseResult.GetValue(shardMegabytes);
            if (megabytes < 1)
                throw new UsageException($"--max-shard-mb must be at least 1 (got {megabytes})");
            if (!parseResult.GetValue(force) && Directory.Exists(destination) && Directory.EnumerateFileSystemEntries(destination).Any())
                throw new UsageException($"output directory {destination} already exists and is not empty (use --force to replace it)");
            if (Llama2cConversion.TryRun(parseResult, source, destination))
                return ExitCodes.Success;
            source = HubModels.Resolve(source);
            var report = ModelConversion.Convert(source, destination, engine.DType, megabytes * 1024 * 1024, overwrite: true);
            var files = Directory.GetFiles(destination).Select(Path.GetFileName).Order().ToList();
            var bytes = Directory.GetFiles(destination).Sum(f => new FileInfo(f).Length);
            Console.WriteLine($"converted {source} → {destination} ({TorchRuntime.DTypeName(engine.DType)}, {bytes / 1e6:F1} MB): {string.Join(", ", files)}");
            if (report.Unexpected.Count > 0)
                Console.WriteLine($"dropped checkpoint tensors the model does not use: {string.Join(", ", report.Unexpected)}");
            return ExitCodes.Success;
        });
        return command;
    }
}
