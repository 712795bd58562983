using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Generation;
using SharpTune.IO;

namespace SharpTune.Cli.Commands;

/// <summary>
/// <c>sharptune convert --from llama2c --model model.bin --tokenizer tokenizer.bin --output DIR</c>: imports a
/// llama2.c checkpoint into the Hugging Face Llama layout. <see cref="AddTo"/> adds --from and --tokenizer to the
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

    /// <summary>Runs the import when --from llama2c was given (the output directory appears complete or not at all);
    /// false leaves the command to its own conversion.</summary>
    public static bool TryRun(ParseResult parseResult, string model, string output)
    {
        if (parseResult.GetValue(From) != "llama2c")
        {
            if (parseResult.GetValue(Tokenizer) is not null)
                throw new UsageException("--tokenizer is for --from llama2c");
            return false;
        }
        var tokenizer = parseResult.GetValue(Tokenizer) ?? throw new UsageException("--from llama2c needs --tokenizer (the llama2.c tokenizer.bin)");
        Llama2cConfig? config = null;
        AtomicDirectory.Write(output, directory => config = Llama2cImporter.Convert(model, tokenizer, directory), overwrite: true);
        Console.WriteLine($"imported llama2.c {model} (dim {config!.Dim}, {config.Layers} layers, {config.Heads} heads, {config.KeyValueHeads} kv heads, " +
                          $"vocab {config.VocabSize}, seq_len {config.SequenceLength}) → {output}: " +
                          string.Join(", ", Directory.GetFiles(output).Select(Path.GetFileName).Order()));
        return true;
    }
}
