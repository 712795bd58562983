using System.CommandLine;
using SharpTune.Cli.Infrastructure;
using SharpTune.Tokenizers.Training;

namespace SharpTune.Cli.Commands;

/// <summary><c>sharptune tokenizer train</c>: trains a BPE, byte-level BPE, WordPiece or Unigram tokenizer from text files.</summary>
public static class TokenizerCommand
{
    public static Command Create()
    {
        var command = new Command("tokenizer", "Tokenizer tools: train a new tokenizer on your own text.");
        command.Subcommands.Add(CreateTrain());
        return command;
    }

    private static Command CreateTrain()
    {
        var typeOption = new Option<string>("--type")
        {
            Description = "bpe (whitespace words, [UNK]), bytelevel-bpe (GPT-2 style), wordpiece (BERT) or unigram (SentencePiece style)",
            Required = true,
        };
        typeOption.AcceptOnlyFromAmong("bpe", "bytelevel-bpe", "wordpiece", "unigram");
        var vocabSizeOption = new Option<int>("--vocab-size") { Description = "Vocabulary size, special tokens included", Required = true };
        var inputOption = new Option<string[]>("--input") { Description = "Text file(s) to train on (one text per line)", Required = true, AllowMultipleArgumentsPerToken = true };
        var outputOption = new Option<string>("--output") { Description = "Where to write the tokenizer.json", Required = true };
        var minFrequencyOption = new Option<long?>("--min-frequency") { Description = "BPE/WordPiece: do not learn merges of pairs seen fewer times (default 2; 0 for bpe)" };

        var command = new Command("train",
            "Train a tokenizer with Hugging Face's algorithms and settings, and save it as a tokenizer.json that SharpTune " +
            "and Hugging Face load.");
        foreach (var option in new Option[] { typeOption, vocabSizeOption, inputOption, outputOption, minFrequencyOption })
            command.Options.Add(option);
        command.SetAction(parseResult =>
        {
            GlobalOptions.Apply(parseResult);
            var type = parseResult.GetValue(typeOption) switch
            {
                "bpe" => TokenizerType.Bpe,
                "bytelevel-bpe" => TokenizerType.ByteLevelBpe,
                "wordpiece" => TokenizerType.WordPiece,
                _ => TokenizerType.Unigram,
            };
            var vocabSize = parseResult.GetValue(vocabSizeOption);
            if (vocabSize <= 0)
                throw new UsageException($"--vocab-size must be positive (got {vocabSize})");
            var inputs = parseResult.GetValue(inputOption)!;
            foreach (var input in inputs)
                if (!File.Exists(input))
                    throw new FileNotFoundException($"Training file not found: {input}", input);
            var output = parseResult.GetValue(outputOption)!;
            var options = new TrainerOptions { VocabSize = vocabSize, MinFrequency = parseResult.GetValue(minFrequencyOption) };
            var tokenizer = CliProgress.Run($"Training {parseResult.GetValue(typeOption)} tokenizer", 1.0, report =>
                TokenizerTrainer.TrainFromFiles(type, inputs, options, new Progress<double>(p => report(p, null))));
            tokenizer.Save(output);
            Console.WriteLine($"Trained a {parseResult.GetValue(typeOption)} tokenizer with {tokenizer.VocabSize} tokens → {output}");
            return ExitCodes.Success;
        });
        return command;
    }
}
