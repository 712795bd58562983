using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Engine;
using SharpTune.Models;
using SharpTune.Quantization;
using Spectre.Console;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune quantize</c>: saves a model with its linear layers quantized (bitsandbytes layout).</summary>
public static class QuantizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face model directory to quantize.", Required = true };
        var output = new Option<string>("--output") { Description = "Directory to create (must not exist or be empty).", Required = true };
        var bits = new Option<int>("--bits") { Description = "4 (NF4/FP4 blocks of 64) or 8 (int8 per-row absmax).", Required = true };
        var quantType = new Option<string>("--quant-type") { Description = "4-bit data type: nf4 or fp4.", DefaultValueFactory = _ => "nf4" };
        var doubleQuant = new Option<bool>("--double-quant") { Description = "Also quantize the 4-bit block constants to 8 bits (~0.37 bits/parameter less)." };
        var computeDType = new Option<string>("--compute-dtype")
        {
            Description = "dtype the weights are dequantized into for the matmuls: float32, bfloat16 or float16.",
            DefaultValueFactory = _ => "float32",
        };
        var command = new Command("quantize",
            "Quantize a model's linear layers (embeddings and the LM head stay in full precision) and save a checkpoint " +
            "with bitsandbytes' key names and a transformers quantization_config, which SharpTune loads directly. " +
            "The tokenizer and other files are copied along; the output appears complete or not at all.")
        {
            model, output, bits, quantType, doubleQuant, computeDType,
        };
        command.SetAction(parseResult =>
        {
            GlobalOptions.Apply(parseResult);
            var source = HubModels.Resolve(parseResult.GetValue(model)!);
            var destination = parseResult.GetValue(output)!;
            if (Directory.Exists(destination) && Directory.EnumerateFileSystemEntries(destination).Any())
                throw new UsageException($"output directory {destination} already exists and is not empty");
            var options = new QuantizationOptions
            {
                Bits = parseResult.GetValue(bits),
                QuantType = QuantCodebooks.ParseFourBit(parseResult.GetValue(quantType)!),
                DoubleQuant = parseResult.GetValue(doubleQuant),
                ComputeDType = TorchRuntime.ResolveDType(parseResult.GetValue(computeDType)),
            };
            options.Validate();
            if (options.Bits == 8 && (parseResult.GetValue(doubleQuant) || parseResult.GetResult(quantType) is { Implicit: false }))
                throw new UsageException("--quant-type and --double-quant apply to --bits 4 only");

            using var network = AutoModel.FromPretrained(source);
            if (Quantizer.IsQuantized(network.Config))
                throw new UsageException($"{source} is already quantized");
            var linearCount = ModuleTree.UniqueModules(network).Count(m => m.Module is TorchSharp.Modules.Linear);
            CliProgress.Run($"quantizing {linearCount} linear layers", linearCount,
                report => Quantizer.Quantize(network, options, new Progress<int>(done => report(done, null))));
            var footprint = Quantizer.Footprint(network);
            ModelConversion.Save(network, source, destination);

            var table = new Table().AddColumns("layers", "parameters", "weight bytes", "bytes/parameter", "file size");
            var size = Directory.EnumerateFiles(destination, "*.safetensors").Sum(f => new FileInfo(f).Length);
            table.AddRow($"{footprint.Layers}", $"{footprint.Parameters:N0}", $"{footprint.WeightBytes:N0}", $"{footprint.BytesPerParameter:F4}", $"{size:N0} B");
            AnsiConsole.Write(table);
            var kind = options.Bits == 8 ? "int8" : QuantCodebooks.Name(options.QuantType) + (options.DoubleQuant ? " + double quantization" : "");
            Console.WriteLine($"{kind}, compute {TorchRuntime.DTypeName(options.ComputeDType)} → {destination}");
            return ExitCodes.Success;
        });
        return command;
    }
}
