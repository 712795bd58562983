using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Generation;

namespace SharpTune.Cli.Commands;

/// <summary>
/// <c>sharptune convert --from llama2c --model model.bin --tokenizer tokenizer.bin --output DIR</c>: imports a
/// llama2.c checkpoint into the Hugging Face Llama layout. <see cref="AddTo"/> adds --from and --tokenizer to a
/// convert command and <see cref="TryRun"/> handles the llama2c case of its action.
/// </summary>
public static class Llama2cConversion
{
    public static readonly Option<string> From = new("--from")
    {
        Description = "Format of --model: hf (a Hugging Face model folder) or llama2c (a llama2.c .bin checkpoint, with --tokenizer).",
        DefaultValueFactory = _ => "hf",
    };

    public static readonly Option<string?> Tokenizer = new("--tokenizer")
    {
        Description = "With --from llama2c: the llama2.c tokenizer file (tokenizer.bin, tok512.bin).",
    };

    static Llama2cConversion() => From.AcceptOnlyFromAmong("hf", "llama2c");

    public static void AddTo(Command command)
    {
        command.Options.Add(From);
        command.Options.Add(Tokenizer);
    }

    /// <summary>Runs the import when --from llama2c was given; false leaves the command to its own conversion.</summary>
    public static bool TryRun(ParseResult parseResult, string model, string output, bool force)
    {
        if (parseResult.GetValue(From) != "llama2c")
        {
            if (parseResult.GetValue(Tokenizer) is not null)
                throw new UsageException("--tokenizer is for --from llama2c");
            return false;
        }
        var tokenizer = parseResult.GetValue(Tokenizer) ?? throw new UsageException("--from llama2c needs --tokenizer (the llama2.c tokenizer.bin)");
        if (!force && Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
            throw new UsageException($"output directory {output} already exists and is not empty (use --force to replace it)");
        var config = Llama2cImporter.Convert(model, tokenizer, output);
        Console.WriteLine($"imported llama2.c {model} (dim {config.Dim}, {config.Layers} layers, {config.Heads} heads, {config.KeyValueHeads} kv heads, " +
                          $"vocab {config.VocabSize}, seq_len {config.SequenceLength}) → {output}: " +
                          string.Join(", ", Directory.GetFiles(output).Select(Path.GetFileName).Order()));
        return true;
    }

    /// <summary>A stand-alone <c>convert</c> command with the llama2c import only, for branches without the dtype convert command.</summary>
    public static Command CreateCommand()
    {
        var model = new Option<string>("--model") { Description = "The llama2.c checkpoint (.bin).", Required = true };
        var output = new Option<string>("--output") { Description = "Directory to write the Hugging Face layout into.", Required = true };
        var force = new Option<bool>("--force") { Description = "Write into an existing non-empty directory." };
        var command = new Command("convert", "Convert a model: --from llama2c imports a llama2.c checkpoint and tokenizer into the Hugging Face Llama layout.")
        {
            model, output, force,
        };
        AddTo(command);
        command.SetAction(parseResult =>
        {
            GlobalOptions.Apply(parseResult);
            if (!TryRun(parseResult, parseResult.GetValue(model)!, parseResult.GetValue(output)!, parseResult.GetValue(force)))
                throw new UsageException("this build's convert only imports llama2.c checkpoints: use --from llama2c");
            return ExitCodes.Success;
        });
        return command;
    }
}
