using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Engine;
using Spectre.Console;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune info</c>: engine, libtorch, threads, devices, CUDA and bf16 support, and a self-check.</summary>
public static class InfoCommand
{
    public static Command Create()
    {
        var command = new Command("info",
            "Show the engine (TorchSharp, libtorch), threads, devices, CUDA and bf16 support, and run a tiny " +
            "forward+backward pass on the selected device as a self-check. The first thing to run on a new machine.");
        command.SetAction(parseResult =>
        {
            var engine = GlobalOptions.Apply(parseResult);
            var info = TorchRuntime.Describe();
            var table = new Table().Border(TableBorder.Rounded).AddColumn("engine").AddColumn("value");
            table.AddRow("SharpTune", info.SharpTuneVersion);
            table.AddRow("TorchSharp", info.TorchSharpVersion);
            table.AddRow("libtorch", $"{info.LibTorchVersion} {info.LibTorch.Build}");
            if (info.LibTorch.Directory is { } directory)
                table.AddRow("libtorch folder", Markup.Escape(directory));
            table.AddRow("threads (intra-op / inter-op)", $"{info.Threads} / {info.InteropThreads}");
            table.AddRow("devices", string.Join(", ", info.Devices));
            table.AddRow("CUDA available", info.CudaAvailable
                ? $"yes ({info.CudaDeviceCount} device(s))"
                : Markup.Escape($"no: {info.LibTorch.CudaUnavailableReason}"));
            table.AddRow("bf16 supported", info.BFloat16Supported ? "yes" : "no");
            var check = TorchRuntime.SelfCheck(engine.Device, engine.DType);
            table.AddRow("self-check",
                $"MLP forward+backward on {check.Device} ({check.DType}): loss {check.Loss:F4}, " +
                $"grad norm {check.GradientNorm:F4}, {check.Elapsed.TotalMilliseconds:F0} ms");
            AnsiConsole.Write(table);
            return ExitCodes.Success;
        });
        return command;
    }
}
