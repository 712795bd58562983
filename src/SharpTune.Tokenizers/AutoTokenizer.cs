using SharpTune.Hub;
using SharpTune.Tokenizers.Loading;

namespace SharpTune.Tokenizers;

/// <summary>
/// Loads whatever tokenizer a model folder (or a single file) holds: tokenizer.json, SentencePiece tokenizer.model,
/// GPT-2 vocab.json + merges.txt, BERT vocab.txt or a llama2.c tokenizer.bin — in that order of preference. A Hub id
/// (<c>org/name[@revision]</c>) that is not a local path is found in the Hugging Face cache or downloaded
/// (<see cref="PretrainedPath"/>).
/// </summary>
public static class AutoTokenizer
{
    public static Tokenizer FromPretrained(string path)
    {
        path = PretrainedPath.Resolve(path, HubFileSelection.Tokenizer);
        if (File.Exists(path))
            return FromFile(path);
        if (!Directory.Exists(path))
            throw new DirectoryNotFoundException($"Tokenizer path not found: {path}");
        string? Find(params string[] names) => names.Select(n => Path.Combine(path, n)).FirstOrDefault(File.Exists);
        var file = Find("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "tokenizer.bin")
                   ?? Directory.EnumerateFiles(path, "tok*.bin").FirstOrDefault()
                   ?? throw new FileNotFoundException(
                       $"No tokenizer in {path} (looked for tokenizer.json, tokenizer.model, vocab.json + merges.txt, vocab.txt, tokenizer.bin)");
        return FromFile(file);
    }

    private static Tokenizer FromFile(string file)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(file))!;
        var name = Path.GetFileName(file);
        var extension = Path.GetExtension(file).ToLowerInvariant();
        if (name.Equals("vocab.json", StringComparison.OrdinalIgnoreCase))
        {
            var merges = Path.Combine(directory, "merges.txt");
            if (!File.Exists(merges))
                throw new FileNotFoundException($"{file} needs merges.txt next to it (GPT-2 byte-level BPE)", merges);
            return Converters.FromGpt2Files(file, merges, TokenizerConfig.Load(directory).SpecialTokens);
        }
        return extension switch
        {
            ".json" => Tokenizer.FromFile(file),
            ".model" => Converters.FromSentencePiece(file),
            ".txt" => FromBertVocab(file, TokenizerConfig.Load(directory)),
            ".bin" => Converters.FromLlama2c(file),
            _ => throw new InvalidDataException($"Unrecognised tokenizer file {file} (expected .json, .model, vocab.txt or .bin)"),
        };
    }

    private static Tokenizer FromBertVocab(string file, TokenizerConfig config) =>
        Converters.FromBertVocab(file, config.DoLowerCase ?? true, config.SpecialTokens);
}
