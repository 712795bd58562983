using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using SharpTune.Tokenizers.Loading;
using SharpTune.Tokenizers.Pipeline;

namespace SharpTune.Tokenizers.Training;

/// <summary>The kinds of tokenizer <see cref="TokenizerTrainer"/> builds, each with Hugging Face's usual pipeline.</summary>
public enum TokenizerType
{
    /// <summary>BPE on words split by <c>\w+|[^\w\s]+</c>, NFD + accent stripping, [UNK] (Hugging Face BPE + Whitespace).</summary>
    Bpe,

    /// <summary>GPT-2 byte-level BPE: no unknown tokens, 256 byte symbols, &lt;|endoftext|&gt;.</summary>
    ByteLevelBpe,

    /// <summary>BERT WordPiece: lowercase, accent stripping, [CLS] A [SEP] template.</summary>
    WordPiece,

    /// <summary>SentencePiece-style unigram with NFKC and ▁ for spaces.</summary>
    Unigram,
}

/// <summary>Training settings; null values take the defaults of the tokenizer type (those of Hugging Face's trainers).</summary>
public sealed record TrainerOptions
{
    public int VocabSize { get; init; } = 30000;
    public long? MinFrequency { get; init; }
    public IReadOnlyList<string>? SpecialTokens { get; init; }
    public int? LimitAlphabet { get; init; }
    public IReadOnlyList<char>? InitialAlphabet { get; init; }
}

/// <summary>Trains a tokenizer from texts or files and returns it ready to use (and to <see cref="Tokenizer.Save"/>).</summary>
public static class TokenizerTrainer
{
    public static Tokenizer TrainFromFiles(TokenizerType type, IEnumerable<string> files, TrainerOptions options, IProgress<double>? progress = null)
    {
        var paths = files.ToList();
        foreach (var path in paths)
            if (!File.Exists(path))
                throw new FileNotFoundException($"Training file not found: {path}", path);
        return Train(type, paths.SelectMany(File.ReadLines), options, progress);
    }

    public static Tokenizer Train(TokenizerType type, IEnumerable<string> texts, TrainerOptions options, IProgress<double>? progress = null)
    {
        if (options.VocabSize <= 0)
            throw new ArgumentException($"Vocabulary size must be positive (got {options.VocabSize})");
        var (normalizerJson, preTokenizerJson) = PipelineFor(type);
        var (normalizer, preTokenizer) = TokenizerJson.Pipeline(normalizerJson, preTokenizerJson, $"{type} trainer");
        var wordCounts = CountWords(texts, normalizer, preTokenizer);
        var specials = options.SpecialTokens ?? type switch
        {
            TokenizerType.ByteLevelBpe => ["<|endoftext|>"],
            TokenizerType.WordPiece => ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            TokenizerType.Unigram => ["<pad>", "</s>", "<unk>"],
            _ => ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"],
        };
        var added = specials.Select((t, i) => new AddedToken(t, i)).ToList();
        JsonObject model;
        JsonNode? postProcessor = null, decoder = null;
        switch (type)
        {
            case TokenizerType.Unigram:
            {
                var unk = specials.Contains("<unk>") ? "<unk>" : null;
                var pieces = UnigramTrainer.Train(wordCounts, new UnigramTrainerOptions
                {
                    VocabSize = options.VocabSize, SpecialTokens = specials,
                }, progress);
                model = Definitions.UnigramModel(pieces, unk is null ? null : specials.ToList().IndexOf(unk), byteFallback: false);
                decoder = Definitions.Typed("Metaspace", ("replacement", "\u2581"), ("prepend_scheme", "always"), ("split", true));
                break;
            }
            default:
            {
                var result = BpeTrainer.Train(wordCounts, new BpeTrainerOptions
                {
                    VocabSize = options.VocabSize,
                    MinFrequency = options.MinFrequency ?? (type == TokenizerType.Bpe ? 0 : 2),
                    SpecialTokens = specials,
                    LimitAlphabet = options.LimitAlphabet ?? (type == TokenizerType.WordPiece ? 1000 : null),
                    InitialAlphabet = options.InitialAlphabet ?? (type == TokenizerType.ByteLevelBpe ? ByteLevelAlphabet.ByteToChar : []),
                    ContinuingSubwordPrefix = type == TokenizerType.WordPiece ? "##" : null,
                }, progress);
                var vocab = Definitions.Vocab(result.Vocab);
                if (type == TokenizerType.WordPiece)
                {
                    var unk = specials.Contains("[UNK]") ? "[UNK]" : specials[0];
                    model = Definitions.WordPieceModel(vocab, unk);
                    var cls = specials.Contains("[CLS]") ? "[CLS]" : specials[0];
                    var sep = specials.Contains("[SEP]") ? "[SEP]" : specials[0];
                    postProcessor = Definitions.BertTemplate(cls, result.Vocab.ToList().IndexOf(cls), sep, result.Vocab.ToList().IndexOf(sep));
                    decoder = Definitions.Typed("WordPiece", ("prefix", "##"), ("cleanup", true));
                }
                else if (type == TokenizerType.ByteLevelBpe)
                {
                    model = Definitions.BpeModel(vocab, Definitions.Merges(result.Merges));
                    postProcessor = Definitions.ByteLevel(addPrefixSpace: true, trimOffsets: false);
                    decoder = Definitions.ByteLevel(addPrefixSpace: true, trimOffsets: true);
                }
                else
                    model = Definitions.BpeModel(vocab, Definitions.Merges(result.Merges), unk: specials.Contains("[UNK]") ? "[UNK]" : null);
                break;
            }
        }
        var json = Definitions.Tokenizer(normalizerJson, preTokenizerJson, model, postProcessor, decoder, added);
        return TokenizerJson.Parse(json, $"trained {type} tokenizer", null);
    }

    /// <summary>The normalizer and pre-tokenizer of each type (as the fixtures' Hugging Face tokenizers use).</summary>
    private static (JsonNode? Normalizer, JsonNode? PreTokenizer) PipelineFor(TokenizerType type) => type switch
    {
        TokenizerType.Bpe => (Definitions.Sequence("Sequence", "normalizers", Definitions.Typed("NFD"), Definitions.Typed("StripAccents")),
            Definitions.Typed("Whitespace")),
        TokenizerType.ByteLevelBpe => (null, Definitions.ByteLevel(addPrefixSpace: false, trimOffsets: true)),
        TokenizerType.WordPiece => (Definitions.BertNormalizer(lowercase: true), Definitions.Typed("BertPreTokenizer")),
        TokenizerType.Unigram => (Definitions.Typed("NFKC"), Definitions.Metaspace()),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Normalizes and pre-tokenizes every text (in parallel) and counts the words.</summary>
    internal static Dictionary<string, long> CountWords(IEnumerable<string> texts, INormalizer? normalizer, IPreTokenizer? preTokenizer)
    {
        var total = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        Parallel.ForEach(texts.Chunk(1024), () => new Dictionary<string, long>(StringComparer.Ordinal), (chunk, _, local) =>
        {
            var words = new List<NormalizedString>();
            foreach (var text in chunk)
            {
                var piece = NormalizedString.FromOriginal(text, 0, text.Length);
                normalizer?.Normalize(piece);
                words.Clear();
                if (preTokenizer is null)
                    words.Add(piece);
                else
                    preTokenizer.Split(piece, words);
                foreach (var word in words)
                    if (word.Length > 0)
                        local[word.Text] = local.GetValueOrDefault(word.Text) + 1;
            }
            return local;
        }, local =>
        {
            foreach (var (word, count) in local)
                total.AddOrUpdate(word, count, (_, c) => c + count);
        });
        return new Dictionary<string, long>(total, StringComparer.Ordinal);
    }
}
