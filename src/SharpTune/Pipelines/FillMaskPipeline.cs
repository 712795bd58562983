using SharpTune.Models;
using SharpTune.Tokenizers;
using static TorchSharp.torch;

namespace SharpTune.Pipelines;

/// <summary>One candidate for a mask token (transformers' keys): its probability, token id, token text, and the input
/// with the mask replaced by it.</summary>
public sealed record FillMaskCandidate(double Score, long Token, string TokenStr, string Sequence);

/// <summary>The candidates for one mask token of an input, best first; <see cref="Position"/> is its token index.</summary>
public sealed record MaskPrediction(int Position, IReadOnlyList<FillMaskCandidate> Candidates);

/// <summary>
/// <c>fill-mask</c>: for every mask token of a text, the <c>top_k</c> most likely tokens (softmax over the vocabulary
/// at that position) from a masked-LM head.
/// </summary>
public sealed class FillMaskPipeline : Pipeline
{
    private FillMaskPipeline(string modelDirectory, PreTrainedModel model, Tokenizer tokenizer, PipelineOptions options)
        : base(FillMask, modelDirectory, model, tokenizer, options)
    {
        MaskToken = tokenizer.SpecialTokens.Mask
                    ?? throw new InvalidDataException($"{options.TokenizerPath ?? modelDirectory}: the tokenizer has no mask token (mask_token) to fill");
        MaskTokenId = tokenizer.TokenToId(MaskToken)
                      ?? throw new InvalidDataException($"{options.TokenizerPath ?? modelDirectory}: the mask token '{MaskToken}' is not in the vocabulary");
    }

    public static FillMaskPipeline FromPretrained(string modelDirectory, PipelineOptions? options = null)
    {
        (modelDirectory, options) = ResolvePaths(modelDirectory, options);
        var tokenizer = AutoTokenizer.FromPretrained(options.TokenizerPath ?? modelDirectory);
        var model = LoadModel(FillMask, modelDirectory, ModelTask.MaskedLM, options, requireTrainedHead: true);
        try
        {
            return new FillMaskPipeline(modelDirectory, model, tokenizer, options);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The text to write where a word is to be predicted (e.g. "[MASK]" or "&lt;mask&gt;").</summary>
    public string MaskToken { get; }
    public int MaskTokenId { get; }

    /// <summary>Fills the masks of one text; see <see cref="Fill(IReadOnlyList{string}, int, CancellationToken)"/>.</summary>
    public IReadOnlyList<MaskPrediction> Fill(string text, int topK = 5) => Fill([text], topK)[0];

    /// <summary>Per text, per mask token (in order), the <paramref name="topK"/> most likely fills. Every text must
    /// hold at least one mask token (within the maximum length).</summary>
    public IReadOnlyList<IReadOnlyList<MaskPrediction>> Fill(IReadOnlyList<string> texts, int topK = 5, CancellationToken cancellation = default)
    {
        if (topK < 1)
            throw new ArgumentException($"top_k must be at least 1 (got {topK})");
        var encodings = Encode(texts);
        var masks = encodings.Select(e => Enumerable.Range(0, e.Length).Where(t => e.Ids[t] == MaskTokenId).ToArray()).ToArray();
        for (var i = 0; i < texts.Count; i++)
            if (masks[i].Length == 0)
                throw new ArgumentException($"fill-mask {Describe(i, texts[i])} has no mask token {MaskToken}" +
                                            (texts[i].Contains(MaskToken, StringComparison.Ordinal) ? $" within the first {MaxLength} tokens" : ""));
        var k = Math.Min(topK, Tokenizer.VocabSize);
        var results = new IReadOnlyList<MaskPrediction>[texts.Count];
        RunBatches(encodings, (rows, _, output) =>
        {
            var logits = output.Logits ?? throw new InvalidOperationException($"{ModelDirectory}: the model returned no logits");
            for (var r = 0; r < rows.Length; r++)
            {
                var ids = encodings[rows[r]].Ids.ToArray();
                var predictions = new List<MaskPrediction>();
                foreach (var position in masks[rows[r]])
                {
                    var probabilities = logits[r, position].to(ScalarType.Float32).softmax(-1);
                    var (values, indexes) = probabilities.topk(k);
                    var scores = values.cpu().data<float>().ToArray();
                    var tokens = indexes.cpu().data<long>().ToArray();
                    predictions.Add(new MaskPrediction(position, tokens.Select((token, j) =>
                        new FillMaskCandidate(scores[j], token, Tokenizer.Decode([(int)token], skipSpecialTokens: false),
                            Sequence(ids, position, (int)token, singleMask: masks[rows[r]].Length == 1))).ToList()));
                }
                results[rows[r]] = predictions;
            }
        }, cancellation);
        return results;
    }

    /// <summary>The input with one mask replaced, decoded as transformers does: without special tokens when it was the
    /// only mask, with them (so the other masks stay visible) otherwise.</summary>
    private string Sequence(int[] ids, int position, int token, bool singleMask)
    {
        var filled = (int[])ids.Clone();
        filled[position] = token;
        return Tokenizer.Decode(filled.Where(id => id != PadTokenId), skipSpecialTokens: singleMask);
    }
}
